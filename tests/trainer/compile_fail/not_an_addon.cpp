// Must NOT compile: a type that is not an add-on.
#include "trainer/trainer.h"
struct NotAnAddOn {
  struct Options {};
  template <class Base>
  class Mixin : public Base {};
};
using Bad = zae::Trainer::add_on<NotAnAddOn>;
static_assert(sizeof(Bad) > 0);
