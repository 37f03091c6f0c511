//! Durations in the configuration, as Synapse writes them: a number of milliseconds, or a string
//! with a unit: `500ms`, `30s`, `5m`, `12h`, `7d`, `4w`, `1y` (365 days).

use serde::{Deserialize, Deserializer, de};

/// A duration in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Lifetime(pub u64);

impl Lifetime {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let number: u64 = number
            .parse()
            .map_err(|_| format!("`{text}` is not a duration (like 30s, 7d, 4w)"))?;
        let factor: u64 = match unit {
            "" | "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            "y" => 365 * 86_400_000,
            _ => {
                return Err(format!(
                    "`{text}`: unknown unit `{unit}` (ms, s, m, h, d, w, y)"
                ));
            }
        };
        number
            .checked_mul(factor)
            .map(Self)
            .ok_or_else(|| format!("`{text}` is too long"))
    }
}

/// Written as milliseconds (job records keep the settings they ran with).
impl serde::Serialize for Lifetime {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for Lifetime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Millis(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Millis(ms) => Ok(Self(ms)),
            Raw::Text(text) => Self::parse(&text).map_err(de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Lifetime;

    #[test]
    fn units() {
        assert_eq!(Lifetime::parse("1500").unwrap().0, 1500);
        assert_eq!(Lifetime::parse("500ms").unwrap().0, 500);
        assert_eq!(Lifetime::parse("30s").unwrap().0, 30_000);
        assert_eq!(Lifetime::parse("7d").unwrap().0, 604_800_000);
        assert_eq!(Lifetime::parse("4w").unwrap().0, 4 * 604_800_000);
        assert_eq!(Lifetime::parse("1y").unwrap().0, 31_536_000_000);
        assert!(Lifetime::parse("soon").is_err());
        assert!(Lifetime::parse("3 fortnights").is_err());
        assert!(Lifetime::parse("99999999999999999999d").is_err());
    }
}
