//! Stream entry ids: `<milliseconds>-<sequence>`, ordered numerically.

use std::fmt;
use std::str::FromStr;

use crate::StreamError;

/// A parsed entry id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub(crate) struct EntryId {
    ms: u64,
    seq: u64,
}

impl EntryId {
    /// The smallest id, below every real entry.
    pub(crate) const ZERO: EntryId = EntryId { ms: 0, seq: 0 };

    /// The id to give the next entry after `self`, at wall-clock time `now_ms`.
    pub(crate) fn next(self, now_ms: u64) -> Option<EntryId> {
        if now_ms > self.ms {
            Some(EntryId { ms: now_ms, seq: 0 })
        } else {
            match self.seq.checked_add(1) {
                Some(seq) => Some(EntryId { ms: self.ms, seq }),
                None => self.ms.checked_add(1).map(|ms| EntryId { ms, seq: 0 }),
            }
        }
    }
}

impl FromStr for EntryId {
    type Err = StreamError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || StreamError::InvalidId(s.to_owned());
        let (ms, seq) = s.split_once('-').ok_or_else(invalid)?;
        let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
        if !digits(ms) || !digits(seq) {
            return Err(invalid());
        }
        Ok(EntryId {
            ms: ms.parse().map_err(|_| invalid())?,
            seq: seq.parse().map_err(|_| invalid())?,
        })
    }
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::EntryId;

    #[test]
    fn parses_orders_and_prints() {
        let a: EntryId = "1700000000000-2".parse().unwrap();
        let b: EntryId = "1700000000000-10".parse().unwrap();
        assert!(a < b);
        assert_eq!(b.to_string(), "1700000000000-10");
        for bad in [
            "",
            "1",
            "1-",
            "-1",
            "a-1",
            "1-2-3",
            "+1-2",
            "99999999999999999999-0",
        ] {
            assert!(bad.parse::<EntryId>().is_err(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn next_is_strictly_greater_even_when_the_clock_goes_back() {
        let a: EntryId = "100-5".parse().unwrap();
        assert_eq!(a.next(200).unwrap().to_string(), "200-0");
        assert_eq!(a.next(50).unwrap().to_string(), "100-6");
        assert_eq!(a.next(100).unwrap().to_string(), "100-6");
    }
}
