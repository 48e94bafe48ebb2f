// Must NOT compile: the same add-on listed twice.
#include "trainer/trainer.h"
struct A : zae::AddOnBase {
  struct Options {};
  template <class Base>
  class Mixin : public Base {
   public:
    using Base::Base;
  };
};
using Bad = zae::Trainer::add_on<A, A>;
static_assert(sizeof(Bad) > 0);
