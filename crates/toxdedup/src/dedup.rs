//! The de-duplication semantics in plain Rust.
//!
//! [`Dedup`] holds `status_texts` and `statuses_texts` in memory and brings
//! them up to date with the rows of `tweets`, exactly as the SQL of
//! [`queries`](crate::queries) does in the databases. The in-memory store uses
//! it; the property tests check its invariants; the conformance suite of
//! `toxstore` checks that every backend agrees with it.
//!
//! # Rules
//! 1. Texts are equal when their bytes are equal.
//! 2. A status id not yet joined is joined to the smallest (in byte order) of
//!    the texts its rows carry. A status id already joined keeps its text.
//! 3. A winning text that has no id yet gets one: `max(existing id, 0) +
//!    ROW_NUMBER() OVER (ORDER BY min(status_id) joined to it, status_text)`.
//!    Ids start at 1; an id once given never changes.
//! 4. `status_count` is the number of distinct status ids joined to the text.
//! 5. Every distinct `(status_id, status_text)` pair of `tweets` whose text is
//!    not the one joined to its status id is a conflict. The count is a
//!    property of the whole table, so every refresh reports it.
//!
//! A text carried only by the losing rows of conflicting status ids gets no
//! id: `status_texts` holds exactly the texts that some status id is joined
//! to.
//!
//! ```
//! use toxdedup::Dedup;
//! let mut dedup = Dedup::new();
//! let report = dedup.refresh([(10, "b"), (11, "a"), (12, "b")]);
//! assert_eq!((report.new_texts, report.new_statuses), (2, 3));
//! assert_eq!(dedup.text_id("b"), Some(1)); // "b" first appears at status 10
//! assert_eq!(dedup.text_id("a"), Some(2));
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// At most this many conflicts are given as examples in a [`DedupReport`].
pub const MAX_CONFLICT_EXAMPLES: usize = 5;

/// What a refresh did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DedupReport {
    /// Texts that got an id in this refresh.
    pub new_texts: u64,
    /// Status ids joined in this refresh.
    pub new_statuses: u64,
    /// Distinct `(status_id, status_text)` pairs in `tweets` whose text is not
    /// the one joined to the status id (after this refresh; the whole table,
    /// not only this refresh's rows).
    pub conflicts: u64,
    /// The first conflicts in `(status_id, rejected)` order, at most
    /// [`MAX_CONFLICT_EXAMPLES`].
    pub conflict_examples: Vec<Conflict>,
    /// Rows of a BigQuery tweets source left out because their status id
    /// does not convert to INT64 or their text is NULL (the whole source, not
    /// only this refresh's rows); always 0 elsewhere, where ids are typed.
    pub skipped_tweets: u64,
    /// The first skipped rows' status ids as text (`NULL` for a missing one),
    /// at most [`MAX_CONFLICT_EXAMPLES`].
    pub skipped_examples: Vec<String>,
}

/// A status id that appears with a text other than the one it is joined to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The status id.
    pub status_id: i64,
    /// The text joined to it.
    pub kept: String,
    /// A text of another row with the same status id.
    pub rejected: String,
}

/// One row of `status_texts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextEntry<'a> {
    /// The text's id.
    pub status_text_id: i64,
    /// The text.
    pub status_text: &'a str,
    /// The number of distinct status ids joined to it.
    pub status_count: u64,
}

/// `status_texts` and `statuses_texts`, in memory.
#[derive(Debug, Clone, Default)]
pub struct Dedup {
    /// `status_text_id` to (text, status count).
    texts: BTreeMap<i64, (String, u64)>,
    /// Text to its id.
    ids_by_text: HashMap<String, i64>,
    /// `status_id` to `status_text_id`: the join table.
    statuses: BTreeMap<i64, i64>,
}

impl Dedup {
    /// Empty tables.
    pub fn new() -> Self {
        Self::default()
    }

    /// Brings the tables up to date with `rows`, the `(status_id,
    /// status_text)` of every row of `tweets` (repeats are allowed and count
    /// once), and reports what changed and the conflicts.
    pub fn refresh<'a, I>(&mut self, rows: I) -> DedupReport
    where
        I: IntoIterator<Item = (i64, &'a str)>,
    {
        // Sorted by status id, then by text bytes (`str`'s order is byte
        // order), so the first pair of each status id carries its smallest
        // text.
        let pairs: BTreeSet<(i64, &str)> = rows.into_iter().collect();

        let mut new_joins: Vec<(i64, &str)> = Vec::new();
        let mut previous_status = None;
        for &(status_id, text) in &pairs {
            if previous_status != Some(status_id) && !self.statuses.contains_key(&status_id) {
                new_joins.push((status_id, text));
            }
            previous_status = Some(status_id);
        }

        // `new_joins` is in increasing status id order, so the first time a
        // new text is seen is at its smallest status id: the id order of
        // rule 3 (ties on the status id cannot happen, since each status id
        // joins one text).
        let mut next_id = self.max_id().max(0);
        let mut report = DedupReport::default();
        for &(status_id, text) in &new_joins {
            let text_id = match self.ids_by_text.get(text) {
                Some(&id) => id,
                None => {
                    next_id += 1;
                    self.ids_by_text.insert(text.to_owned(), next_id);
                    self.texts.insert(next_id, (text.to_owned(), 0));
                    report.new_texts += 1;
                    next_id
                }
            };
            self.statuses.insert(status_id, text_id);
            if let Some(entry) = self.texts.get_mut(&text_id) {
                entry.1 += 1;
            }
            report.new_statuses += 1;
        }

        for &(status_id, text) in &pairs {
            let kept = self.text_of_status(status_id).expect("every status id of the rows was joined above");
            if kept != text {
                report.conflicts += 1;
                if report.conflict_examples.len() < MAX_CONFLICT_EXAMPLES {
                    report.conflict_examples.push(Conflict {
                        status_id,
                        kept: kept.to_owned(),
                        rejected: text.to_owned(),
                    });
                }
            }
        }
        report
    }

    /// The largest text id, or 0 when there is none.
    pub fn max_id(&self) -> i64 {
        self.texts.keys().next_back().copied().unwrap_or(0)
    }

    /// The id of a text, if it has one.
    pub fn text_id(&self, text: &str) -> Option<i64> {
        self.ids_by_text.get(text).copied()
    }

    /// The text of an id.
    pub fn text(&self, status_text_id: i64) -> Option<&str> {
        self.texts.get(&status_text_id).map(|(text, _)| text.as_str())
    }

    /// The text id a status id is joined to.
    pub fn text_id_of_status(&self, status_id: i64) -> Option<i64> {
        self.statuses.get(&status_id).copied()
    }

    /// The text a status id is joined to.
    pub fn text_of_status(&self, status_id: i64) -> Option<&str> {
        self.text_id_of_status(status_id).and_then(|id| self.text(id))
    }

    /// The rows of `status_texts`, in increasing id order.
    pub fn texts(&self) -> impl Iterator<Item = TextEntry<'_>> + '_ {
        self.texts.iter().map(|(&status_text_id, (text, count))| TextEntry {
            status_text_id,
            status_text: text,
            status_count: *count,
        })
    }

    /// The rows of `statuses_texts` as `(status_id, status_text_id)`, in
    /// increasing status id order.
    pub fn statuses(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.statuses.iter().map(|(&status_id, &text_id)| (status_id, text_id))
    }

    /// The number of rows of `status_texts`.
    pub fn n_texts(&self) -> usize {
        self.texts.len()
    }

    /// The number of rows of `statuses_texts`.
    pub fn n_statuses(&self) -> usize {
        self.statuses.len()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    /// Refreshes a fresh `Dedup` with `rows` and returns `(text, id)` in id
    /// order, then the report.
    fn check(rows: &[(i64, &str)], expected_texts: &[(&str, u64)], expected_conflicts: u64) {
        let mut dedup = Dedup::new();
        let report = dedup.refresh(rows.iter().copied());
        let texts: Vec<(&str, u64)> = dedup.texts().map(|e| (e.status_text, e.status_count)).collect();
        assert_eq!(texts, expected_texts, "texts of {rows:?}");
        let ids: Vec<i64> = dedup.texts().map(|e| e.status_text_id).collect();
        assert_eq!(ids, (1..=expected_texts.len() as i64).collect::<Vec<_>>());
        assert_eq!(report.conflicts, expected_conflicts, "conflicts of {rows:?}");
    }

    #[test]
    fn texts_are_grouped_by_bytes_and_numbered_by_first_status() {
        check(&[(3, "x"), (1, "y"), (2, "x")], &[("y", 1), ("x", 2)], 0);
        // NFC and NFD spellings, and whitespace, stay distinct.
        check(
            &[(1, "\u{e9}"), (2, "e\u{301}"), (3, "a "), (4, "a")],
            &[("\u{e9}", 1), ("e\u{301}", 1), ("a ", 1), ("a", 1)],
            0,
        );
        check(&[(1, ""), (2, ""), (2, "")], &[("", 2)], 0);
        check(&[], &[], 0);
    }

    #[test]
    fn a_conflicting_status_id_takes_its_smallest_text() {
        check(&[(5, "b"), (5, "a"), (5, "c"), (6, "c")], &[("a", 1), ("c", 1)], 2);
        let mut dedup = Dedup::new();
        let report = dedup.refresh([(5, "b"), (5, "a")]);
        assert_eq!(report.conflict_examples, [Conflict { status_id: 5, kept: "a".into(), rejected: "b".into() }]);
        // A text carried only by a losing row gets no id.
        assert_eq!(dedup.text_id("b"), None);
    }

    #[test]
    fn a_joined_status_id_keeps_its_text() {
        let mut dedup = Dedup::new();
        dedup.refresh([(5, "m")]);
        let report = dedup.refresh([(5, "m"), (5, "a"), (6, "z")]);
        assert_eq!(dedup.text_of_status(5), Some("m"));
        assert_eq!((report.new_texts, report.new_statuses, report.conflicts), (1, 1, 1));
        assert_eq!(report.conflict_examples[0], Conflict { status_id: 5, kept: "m".into(), rejected: "a".into() });
        assert_eq!(dedup.text_id("z"), Some(2));
        // Refreshing again changes nothing and reports the same conflict.
        let again = dedup.refresh([(5, "m"), (5, "a"), (6, "z")]);
        assert_eq!((again.new_texts, again.new_statuses, again.conflicts), (0, 0, 1));
    }

    #[test]
    fn conflict_examples_are_bounded() {
        let rows: Vec<(i64, String)> = (0..20).flat_map(|id| [(id, "a".to_owned()), (id, format!("b{id}"))]).collect();
        let mut dedup = Dedup::new();
        let report = dedup.refresh(rows.iter().map(|(id, text)| (*id, text.as_str())));
        assert_eq!(report.conflicts, 20);
        assert_eq!(report.conflict_examples.len(), MAX_CONFLICT_EXAMPLES);
        assert_eq!(report.conflict_examples[0].status_id, 0);
    }

    /// Small alphabets so that texts and status ids repeat often; includes
    /// the empty text, a trailing space and NFC/NFD look-alikes.
    fn tweets() -> impl Strategy<Value = Vec<(i64, String)>> {
        let text = prop::sample::select(vec!["", " ", "a", "a ", "A", "\u{e9}", "e\u{301}", "b", "\u{1f600}", "ab"])
            .prop_map(str::to_owned);
        prop::collection::vec((0i64..40, text), 0..80)
    }

    /// The invariants after any sequence of refreshes over `rows`.
    fn assert_invariants(dedup: &Dedup, rows: &[(i64, String)]) {
        let status_ids: BTreeSet<i64> = rows.iter().map(|(id, _)| *id).collect();
        // Every status id maps to exactly one text, one of its own.
        assert_eq!(dedup.statuses().map(|(id, _)| id).collect::<BTreeSet<_>>(), status_ids);
        for (status_id, text_id) in dedup.statuses() {
            let text = dedup.text(text_id).expect("joined to an existing text");
            assert!(rows.contains(&(status_id, text.to_owned())));
        }
        // The counts add up to the number of distinct status ids.
        assert_eq!(dedup.texts().map(|e| e.status_count).sum::<u64>(), status_ids.len() as u64);
        for entry in dedup.texts() {
            let joined = dedup.statuses().filter(|&(_, id)| id == entry.status_text_id).count() as u64;
            assert_eq!(entry.status_count, joined);
            assert!(entry.status_count >= 1);
        }
        // One text per distinct byte string joined, one id per text.
        let joined_texts: BTreeSet<&str> = dedup.statuses().filter_map(|(_, id)| dedup.text(id)).collect();
        assert_eq!(dedup.n_texts(), joined_texts.len());
        assert_eq!(dedup.ids_by_text.len(), dedup.n_texts());
        // Conflicts: distinct pairs minus distinct status ids.
        let pairs: BTreeSet<&(i64, String)> = rows.iter().collect();
        let mut fresh = dedup.clone();
        let report = fresh.refresh(rows.iter().map(|(id, text)| (*id, text.as_str())));
        assert_eq!(report.conflicts, (pairs.len() - status_ids.len()) as u64);
        assert_eq!((report.new_texts, report.new_statuses), (0, 0), "a refresh is idempotent");
    }

    proptest! {
        #[test]
        fn one_refresh_keeps_the_invariants(rows in tweets()) {
            let mut dedup = Dedup::new();
            let report = dedup.refresh(rows.iter().map(|(id, text)| (*id, text.as_str())));
            assert_invariants(&dedup, &rows);
            prop_assert_eq!(report.new_texts as usize, dedup.n_texts());
            prop_assert_eq!(report.new_statuses as usize, dedup.n_statuses());
            // Without conflicts, the texts are exactly the distinct byte strings.
            let texts: BTreeSet<&str> = rows.iter().map(|(_, t)| t.as_str()).collect();
            if report.conflicts == 0 {
                prop_assert_eq!(dedup.n_texts(), texts.len());
            }
            // Ids follow the smallest status id carrying the text.
            let firsts: Vec<i64> = dedup
                .texts()
                .map(|e| dedup.statuses().find(|&(_, id)| id == e.status_text_id).map(|(s, _)| s).expect("joined"))
                .collect();
            prop_assert!(firsts.windows(2).all(|pair| pair[0] < pair[1]));
        }

        #[test]
        fn two_increments_keep_the_first_ids(rows in tweets(), split in 0usize..80) {
            let split = split.min(rows.len());
            let mut dedup = Dedup::new();
            dedup.refresh(rows[..split].iter().map(|(id, text)| (*id, text.as_str())));
            let first: Vec<(i64, String, i64)> = dedup
                .statuses()
                .map(|(status, id)| (status, dedup.text(id).expect("text").to_owned(), id))
                .collect();
            let first_max = dedup.max_id();
            let report = dedup.refresh(rows.iter().map(|(id, text)| (*id, text.as_str())));
            assert_invariants(&dedup, &rows);
            // Existing join rows and ids never change.
            for (status, text, id) in &first {
                prop_assert_eq!(dedup.text_id_of_status(*status), Some(*id));
                prop_assert_eq!(dedup.text_id(text), Some(*id));
            }
            // New texts continue after the old maximum, with no gaps.
            let new_ids: Vec<i64> = dedup.texts().map(|e| e.status_text_id).filter(|&id| id > first_max).collect();
            prop_assert_eq!(new_ids, (first_max + 1..=first_max + report.new_texts as i64).collect::<Vec<_>>());
            // Without conflicts, two increments group exactly like one.
            let mut once = Dedup::new();
            let once_report = once.refresh(rows.iter().map(|(id, text)| (*id, text.as_str())));
            if once_report.conflicts == 0 {
                for (status, _) in &rows {
                    prop_assert_eq!(once.text_of_status(*status), dedup.text_of_status(*status));
                }
                prop_assert_eq!(once.n_texts(), dedup.n_texts());
            }
        }
    }
}
