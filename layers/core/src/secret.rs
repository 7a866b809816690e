//! Keys, tokens and secrets as a type that never prints: `Debug` shows `[redacted]`,
//! and there is no `Display`. The value is read only where it is used (`expose`).

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that sends or signs with it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_prints() {
        let secret = Secret::new("tok-456");
        let printed = format!("{secret:?} {:#?} {:?}", secret, Some(secret.clone()));
        assert!(!printed.contains("tok-456"), "{printed}");
        assert_eq!(secret.expose(), "tok-456");
    }
}
