//! Trailing text after a statement: nothing but white space, `;` and
//! comments may follow the one statement a prepare compiles. (Which kind of
//! statement it is comes from SQLite itself: see `authorize.rs`.)

/// True when `s` holds nothing but white space, `;` and comments.
pub fn only_trivia(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_whitespace() || b[i] == b';' {
            i += 1;
        } else if b[i..].starts_with(b"--") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            match s[i + 2..].find("*/") {
                Some(end) => i += end + 4,
                None => return true,
            }
        } else {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_trivia_after_a_statement() {
        assert!(only_trivia(""));
        assert!(only_trivia(" ;\n -- c\n /* x */ ;"));
        assert!(only_trivia("/* unterminated"));
        assert!(!only_trivia("; SELECT 2"));
        assert!(!only_trivia("-- c\nx"));
    }
}
