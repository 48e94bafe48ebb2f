// Add-on composition: Trainer::add_on<A, B, ...> builds a trainer type in which
// each add-on wraps the one before it (the last listed is outermost), like the
// upstream Python `Trainer.add_on(A, B)`.
//
// An add-on is a class derived from AddOnBase with
//   struct Options { ... };                    // its own settings (may be empty)
//   template <class Base> class Mixin : public Base { ... };
// Mixin<Base> overrides any virtual hook of Trainer and calls through to Base.
// Its constructor takes (const TrainerOptions&, const Args&...) and finds its own
// Options among the arguments by type (absent = defaults): see trainer/README.md.
#pragma once

#include <type_traits>

namespace zae {

struct TrainerOptions;

/// The base of every add-on. Not instantiable on its own.
class AddOnBase {
 protected:
  AddOnBase() = default;
};

namespace detail {

template <class T, class... Ts>
inline constexpr bool contains_type_v = (std::is_same_v<T, Ts> || ...);

template <class... Ts>
struct AllDistinct : std::true_type {};
template <class T, class... Ts>
struct AllDistinct<T, Ts...> : std::bool_constant<!contains_type_v<T, Ts...> && AllDistinct<Ts...>::value> {};

template <class A, class = void>
struct IsAddOn : std::false_type {};
template <class A>
struct IsAddOn<A, std::void_t<typename A::Options>>
    : std::bool_constant<std::is_base_of_v<AddOnBase, A> && !std::is_same_v<A, AddOnBase>> {};

/// The first argument of type Opt, or Opt{} when none is given.
template <class Opt>
Opt pick_options() {
  return Opt{};
}
template <class Opt, class First, class... Rest>
Opt pick_options(const First& first, const Rest&... rest) {
  if constexpr (std::is_same_v<Opt, First>)
    return first;
  else
    return pick_options<Opt>(rest...);
}

/// An add-on that must wrap all others declares `static constexpr bool must_be_outermost = true`
/// (MultiGPUAddon: it has to see every other add-on's decisions, e.g. a signal-triggered
/// stop, before the ranks agree on them).
template <class A, class = void>
struct IsOutermostAddOn : std::false_type {};
template <class A>
struct IsOutermostAddOn<A, std::void_t<decltype(A::must_be_outermost)>> : std::bool_constant<A::must_be_outermost> {};

template <class... As>
constexpr bool outermost_addons_are_last() {
  constexpr bool flags[] = {false, IsOutermostAddOn<As>::value...};  // flags[i + 1]: add-on i
  for (size_t i = 1; i < sizeof...(As); ++i)
    if (flags[i]) return false;
  return true;
}

template <class Core, class... AddOns>
struct Chain {
  using type = Core;
};
template <class Core, class A, class... Rest>
struct Chain<Core, A, Rest...> {
  using type = typename Chain<typename A::template Mixin<Core>, Rest...>::type;
};

/// The composed trainer: checks at compile time that every argument is an add-on,
/// none is listed twice, and every constructor argument is some add-on's Options.
template <class Core, class... AddOns>
class AddOnTrainer : public Chain<Core, AddOns...>::type {
  static_assert(sizeof...(AddOns) > 0, "Trainer::add_on needs at least one add-on");
  static_assert((IsAddOn<AddOns>::value && ...),
                "Trainer::add_on: every argument must be an add-on: a class derived from zae::AddOnBase "
                "with a nested `struct Options` and a nested `template <class Base> class Mixin`");
  static_assert(AllDistinct<AddOns...>::value, "Trainer::add_on: the same add-on is listed twice");
  static_assert(outermost_addons_are_last<AddOns...>(),
                "Trainer::add_on: MultiGPUAddon (an add-on with must_be_outermost) must be listed last");
  using Base = typename Chain<Core, AddOns...>::type;

 public:
  template <class... Args>
  explicit AddOnTrainer(const TrainerOptions& options, const Args&... add_on_options)
      : Base(options, add_on_options...) {
    static_assert((contains_type_v<Args, typename AddOns::Options...> && ...),
                  "Trainer::add_on: a constructor argument is not the Options of any listed add-on");
    static_assert(AllDistinct<Args...>::value, "Trainer::add_on: an add-on's Options are given twice");
  }
};

}  // namespace detail
}  // namespace zae
