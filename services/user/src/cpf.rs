//! The CPF, Brazil's individual taxpayer number: eleven digits, the last two
//! check digits computed from the first nine (mod 11).

use std::fmt;

/// A CPF whose check digits are right. Stored as its eleven digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cpf(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CpfError {
    #[error("a CPF has 11 digits (formatting such as 529.982.247-25 is fine)")]
    Length,
    #[error("a CPF of one repeated digit is not valid")]
    Repeated,
    #[error("the check digits do not match: this is not a valid CPF")]
    CheckDigits,
}

impl Cpf {
    pub fn parse(input: &str) -> Result<Cpf, CpfError> {
        let input = input.trim();
        if !input
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == '-' || c == ' ')
        {
            return Err(CpfError::Length);
        }
        let digits: Vec<u32> = input.chars().filter_map(|c| c.to_digit(10)).collect();
        if digits.len() != 11 {
            return Err(CpfError::Length);
        }
        if digits.iter().all(|d| *d == digits[0]) {
            return Err(CpfError::Repeated);
        }
        if check_digit(&digits[..9]) != digits[9] || check_digit(&digits[..10]) != digits[10] {
            return Err(CpfError::CheckDigits);
        }
        Ok(Cpf(digits
            .iter()
            .map(|d| char::from_digit(*d, 10).unwrap_or('0'))
            .collect()))
    }

    pub fn digits(&self) -> &str {
        &self.0
    }
}

/// The next check digit: weights from len+1 down to 2, remainder mod 11,
/// and 0 when the remainder is below 2.
fn check_digit(digits: &[u32]) -> u32 {
    let weight_start = digits.len() as u32 + 1;
    let sum: u32 = digits
        .iter()
        .zip((2..=weight_start).rev())
        .map(|(d, w)| d * w)
        .sum();
    match sum % 11 {
        r if r < 2 => 0,
        r => 11 - r,
    }
}

impl fmt::Display for Cpf {
    /// `529.982.247-25`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &self.0;
        write!(f, "{}.{}.{}-{}", &d[0..3], &d[3..6], &d[6..9], &d[9..11])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_cpfs_with_or_without_formatting() {
        assert_eq!(
            Cpf::parse("529.982.247-25").unwrap().digits(),
            "52998224725"
        );
        assert_eq!(
            Cpf::parse("52998224725").unwrap().to_string(),
            "529.982.247-25"
        );
        // Check digits of 0 (remainder below 2).
        assert!(Cpf::parse("111.444.777-35").is_ok());
        assert!(Cpf::parse("123.456.789-09").is_ok());
    }

    #[test]
    fn refuses_wrong_check_digits_repeats_and_lengths() {
        assert_eq!(Cpf::parse("529.982.247-24"), Err(CpfError::CheckDigits));
        assert_eq!(Cpf::parse("529.982.247-15"), Err(CpfError::CheckDigits));
        assert_eq!(Cpf::parse("111.111.111-11"), Err(CpfError::Repeated));
        assert_eq!(Cpf::parse("000.000.000-00"), Err(CpfError::Repeated));
        assert_eq!(Cpf::parse("5299822472"), Err(CpfError::Length));
        assert_eq!(Cpf::parse("529982247250"), Err(CpfError::Length));
        assert_eq!(Cpf::parse("52998224a25"), Err(CpfError::Length));
        assert_eq!(Cpf::parse(""), Err(CpfError::Length));
    }
}
