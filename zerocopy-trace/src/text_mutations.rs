//! Mutated inputs for the property tests of the parsers of kernel-provided text (tracepoint
//! `format` files, mount tables): proptest strategies that take a real sample and apply a few
//! random edits, so most cases stay close to valid input and reach deep into the parser, and a
//! failing case shrinks to the fewest edits that still break it. Tests only.

use proptest::{prelude::*, sample::Index};

/// Bytes that matter to line-based parsers, besides random ones.
const INTERESTING: &[u8] = b":;\t\n \0[]*0123456789-abcdefxyz\xff";

/// One edit of a byte string. Positions are `Index`es, resolved against the length the string
/// has when the edit is applied.
#[derive(Clone, Debug)]
enum Edit {
    /// Overwrites one byte with one of `INTERESTING`.
    Set(Index, u8),
    Insert(Index, u8),
    Remove(Index),
    /// Repeats the span of up to 63 bytes that starts there.
    Duplicate(Index, usize),
    Truncate(Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<Index>(), prop::sample::select(INTERESTING)).prop_map(|(at, b)| Edit::Set(at, b)),
        (any::<Index>(), any::<u8>()).prop_map(|(at, b)| Edit::Insert(at, b)),
        any::<Index>().prop_map(Edit::Remove),
        (any::<Index>(), 0..64usize).prop_map(|(at, len)| Edit::Duplicate(at, len)),
        any::<Index>().prop_map(Edit::Truncate),
    ]
}

fn apply(bytes: &mut Vec<u8>, edit: &Edit) {
    let len = bytes.len();
    match *edit {
        Edit::Set(at, b) if len > 0 => bytes[at.index(len)] = b,
        Edit::Insert(at, b) => bytes.insert(at.index(len + 1), b),
        Edit::Remove(at) if len > 0 => {
            bytes.remove(at.index(len));
        }
        Edit::Duplicate(at, span) if len > 0 => {
            let start = at.index(len);
            let end = (start + span).min(len);
            let copy = bytes[start..end].to_vec();
            bytes.splice(start..start, copy);
        }
        Edit::Truncate(at) => bytes.truncate(at.index(len + 1)),
        // Nothing to overwrite, remove or repeat in an empty string.
        _ => {}
    }
}

/// `sample` with 1 to 9 edits, as (lossy) UTF-8 text.
pub fn mutated(sample: &'static str) -> impl Strategy<Value = String> {
    prop::collection::vec(edit(), 1..=9).prop_map(move |edits| {
        let mut bytes = sample.as_bytes().to_vec();
        for e in &edits {
            apply(&mut bytes, e);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

#[cfg(test)]
mod tests {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    use super::*;

    proptest! {
        /// Each edit changes the length as it says, on any string, the empty one too.
        #[test]
        fn edits_change_the_length_as_they_say(
            mut bytes in prop::collection::vec(any::<u8>(), 0..8),
            e in edit(),
        ) {
            let before = bytes.len();
            apply(&mut bytes, &e);
            let after = bytes.len();
            match e {
                Edit::Set(..) => prop_assert_eq!(after, before),
                Edit::Insert(..) => prop_assert_eq!(after, before + 1),
                Edit::Remove(_) => prop_assert_eq!(after, before.saturating_sub(1)),
                Edit::Duplicate(_, span) => prop_assert!((before..=before + span).contains(&after)),
                Edit::Truncate(_) => prop_assert!(after <= before),
            }
        }
    }

    /// The mutations are small: most cases differ from the sample, all stay near its size.
    #[test]
    fn mutations_stay_near_the_sample() {
        const SAMPLE: &str = "name: x\nfield:int a;\toffset:8;\tsize:4;\n";
        let mut runner = TestRunner::deterministic();
        let strategy = mutated(SAMPLE);
        let mut changed = 0;
        for _ in 0..1_000 {
            let text = strategy.new_tree(&mut runner).unwrap().current();
            changed += usize::from(text != SAMPLE);
            // Nine edits add at most 9 * 63 bytes, each up to 3 bytes once made lossy UTF-8.
            assert!(text.len() <= 3 * (SAMPLE.len() + 9 * 63), "{text:?}");
        }
        assert!(changed > 900, "only {changed} of 1000 cases differ");
    }
}
