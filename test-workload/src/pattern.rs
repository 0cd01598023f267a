//! The bytes every mode moves, and the receivers' check of them. Byte `i` of a round is
//! `i % 251`: a prime period, so a chunk or message landing at the wrong offset shows up.

use crate::ground_truth::Failure;

const PERIOD: u64 = 251;

fn byte_at(offset: u64) -> u8 {
    (offset % PERIOD) as u8
}

/// One round's worth of data (what the input files hold).
pub fn pattern(len: u64) -> Vec<u8> {
    (0..len).map(byte_at).collect()
}

/// Checks a received stream of `rounds` repetitions of `pattern(round_len)`, piece by piece.
/// Runs in the children: plain computation, no syscalls, no allocation.
pub struct Verifier {
    round_len: u64,
    expected_total: u64,
    received: u64,
}

impl Verifier {
    pub fn new(round_len: u64, rounds: u64) -> Self {
        Verifier {
            round_len,
            expected_total: round_len.saturating_mul(rounds),
            received: 0,
        }
    }

    pub fn check(&mut self, data: &[u8]) -> Result<(), Failure> {
        if self.received + data.len() as u64 > self.expected_total {
            return Err(Failure::new("received more bytes than were sent"));
        }
        for (i, &b) in data.iter().enumerate() {
            let offset = (self.received + i as u64) % self.round_len;
            if b != byte_at(offset) {
                return Err(Failure::new("received bytes differ from the bytes sent"));
            }
        }
        self.received += data.len() as u64;
        Ok(())
    }

    /// At EOF: everything sent has arrived.
    pub fn finish(&self) -> Result<(), Failure> {
        if self.received != self.expected_total {
            return Err(Failure::new("stream ended before all bytes arrived"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_repeated_rounds_in_any_pieces() {
        let round = pattern(1000);
        let mut v = Verifier::new(1000, 2);
        let stream: Vec<u8> = round.iter().chain(&round).copied().collect();
        for piece in stream.chunks(333) {
            v.check(piece).expect("valid piece");
        }
        v.finish().expect("complete");
    }

    #[test]
    fn rejects_shifted_short_and_extra_data() {
        let round = pattern(600);
        assert!(Verifier::new(600, 1).check(&round[1..]).is_err());
        let mut short = Verifier::new(600, 1);
        short.check(&round[..599]).expect("prefix");
        assert!(short.finish().is_err());
        let mut extra = Verifier::new(600, 1);
        extra.check(&round).expect("round");
        assert!(extra.check(&round[..1]).is_err());
    }

    #[test]
    fn empty_stream_is_complete() {
        Verifier::new(0, 3).finish().expect("nothing expected");
    }
}
