// calc's fixed-point core: decimal numbers with a fixed count of digits
// after the point, as calc prints them (CALC_PRECISION).
#pragma once
#include <cstdint>
#include <string>

class Fixed {
 public:
  static constexpr int kDigits = 6;
  static constexpr std::int64_t kScale = 1000000;

  static Fixed FromInt(std::int64_t value) { return Fixed(value * kScale); }
  static Fixed Parse(const std::string& text);  // "12.5", "-0.25"

  Fixed operator+(Fixed other) const { return Fixed(raw_ + other.raw_); }
  Fixed operator-(Fixed other) const { return Fixed(raw_ - other.raw_); }
  Fixed operator*(Fixed other) const;
  Fixed operator/(Fixed other) const;  // throws std::domain_error on zero
  bool operator==(Fixed other) const { return raw_ == other.raw_; }

  std::string ToString() const;  // trailing zeros trimmed, as calc prints
  std::int64_t raw() const { return raw_; }

 private:
  explicit Fixed(std::int64_t raw) : raw_(raw) {}
  std::int64_t raw_;
};
