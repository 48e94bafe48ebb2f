// Must NOT compile: an add-on that must be outermost (like MultiGPUAddon) listed before another.
#include "trainer/trainer.h"
struct Outer : zae::AddOnBase {
  static constexpr bool must_be_outermost = true;
  struct Options {};
  template <class Base>
  class Mixin : public Base {
   public:
    using Base::Base;
  };
};
struct Other : zae::AddOnBase {
  struct Options {};
  template <class Base>
  class Mixin : public Base {
   public:
    using Base::Base;
  };
};
using Bad = zae::Trainer::add_on<Outer, Other>;
static_assert(sizeof(Bad) > 0);
