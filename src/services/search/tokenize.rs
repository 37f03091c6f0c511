//! Tokenisation of indexed text and of search terms, one rule for both: the text is lower-cased
//! (Unicode `to_lowercase`) and split on every character that is not alphanumeric (Unicode
//! `char::is_alphanumeric`), so `Héllo, WORLD!` gives `héllo` and `world`. No stemming, no stop
//! words; tokens longer than [`MAX_TOKEN_CHARS`] are dropped (they would only bloat keys).

use std::collections::BTreeMap;

/// Longer words are not indexed (and not searchable).
pub const MAX_TOKEN_CHARS: usize = 64;

/// The tokens of `text`, in order, with repetitions.
pub fn tokens(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty() && w.chars().count() <= MAX_TOKEN_CHARS)
        .map(str::to_lowercase)
}

/// Each distinct token of `text` with its number of occurrences.
pub fn token_counts(text: &str) -> BTreeMap<String, u32> {
    let mut counts = BTreeMap::new();
    for token in tokens(text) {
        *counts.entry(token).or_insert(0u32) += 1;
    }
    counts
}

/// The distinct words of a search term, in the order given (a repeated word counts once).
pub fn query_words(term: &str) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    for token in tokens(term) {
        if !words.contains(&token) {
            words.push(token);
        }
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_cases_and_splits_on_non_alphanumerics() {
        let words: Vec<String> = tokens("Héllo, WORLD! it's 2024-05_01 ÄPFEL").collect();
        assert_eq!(
            words,
            ["héllo", "world", "it", "s", "2024", "05", "01", "äpfel"]
        );
    }

    #[test]
    fn non_latin_scripts_are_words_too() {
        let words: Vec<String> = tokens("Привет мир · 東京").collect();
        assert_eq!(words, ["привет", "мир", "東京"]);
    }

    #[test]
    fn counts_repetitions_and_drops_huge_words() {
        let long = "x".repeat(MAX_TOKEN_CHARS + 1);
        let counts = token_counts(&format!("cat Cat dog {long}"));
        assert_eq!(counts.get("cat"), Some(&2));
        assert_eq!(counts.get("dog"), Some(&1));
        assert_eq!(counts.len(), 2);
    }

    #[test]
    fn query_words_are_distinct_and_ordered() {
        assert_eq!(
            query_words("  Lunch, lunch AND wine "),
            ["lunch", "and", "wine"]
        );
        assert!(query_words(" ,;- ").is_empty());
    }
}
