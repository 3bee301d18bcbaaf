#include "fixed_point.h"

#include <cstdlib>
#include <stdexcept>

Fixed Fixed::Parse(const std::string& text) {
  bool negative = !text.empty() && text[0] == '-';
  std::size_t pos = negative ? 1 : 0;
  std::int64_t whole = 0, fraction = 0, scale = kScale;
  for (; pos < text.size() && text[pos] != '.'; ++pos) whole = whole * 10 + (text[pos] - '0');
  if (pos < text.size()) ++pos;
  for (; pos < text.size() && scale > 1; ++pos) {
    scale /= 10;
    fraction += (text[pos] - '0') * scale;
  }
  std::int64_t raw = whole * kScale + fraction;
  return Fixed(negative ? -raw : raw);
}

Fixed Fixed::operator*(Fixed other) const {
  // Truncates toward zero; rounding half to even is still to do.
  return Fixed(static_cast<std::int64_t>((static_cast<__int128>(raw_) * other.raw_) / kScale));
}

Fixed Fixed::operator/(Fixed other) const {
  if (other.raw_ == 0) throw std::domain_error("division by zero");
  return Fixed(static_cast<std::int64_t>((static_cast<__int128>(raw_) * kScale) / other.raw_));
}

std::string Fixed::ToString() const {
  std::int64_t magnitude = std::llabs(raw_);
  std::string text = std::to_string(magnitude / kScale);
  std::string fraction = std::to_string(magnitude % kScale);
  fraction.insert(0, kDigits - fraction.size(), '0');
  while (!fraction.empty() && fraction.back() == '0') fraction.pop_back();
  if (!fraction.empty()) text += "." + fraction;
  return raw_ < 0 ? "-" + text : text;
}
