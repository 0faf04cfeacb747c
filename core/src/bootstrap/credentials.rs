//! The registry's accounts: generated passwords (24 characters, as the original's) and the
//! htpasswd file distribution reads (bcrypt, the only scheme it accepts).

use ring::rand::{SecureRandom, SystemRandom};

/// Length of generated passwords.
pub const PASSWORD_LENGTH: usize = 24;
/// Account Jackal pushes with.
pub const PUSH_USER: &str = "jackal-push";
/// Read-only account workloads pull with.
pub const PULL_USER: &str = "jackal-pull";
/// bcrypt cost of the htpasswd entries: distribution checks a password on every request, so the
/// cost stays at bcrypt's minimum-recommended 10.
const BCRYPT_COST: u32 = 10;

/// Why credentials could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// The system's random source failed.
    #[error("failed to generate a password: the system random source is unavailable")]
    Random,
    /// Hashing failed.
    #[error("failed to hash the password of {user}: {source}")]
    Hash {
        /// The account.
        user: String,
        /// Why.
        source: bcrypt::BcryptError,
    },
}

/// A random password of [`PASSWORD_LENGTH`] letters and digits (about 143 bits).
pub fn generate_password() -> Result<String, CredentialsError> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let random = SystemRandom::new();
    let mut password = String::with_capacity(PASSWORD_LENGTH);
    while password.len() < PASSWORD_LENGTH {
        let mut byte = [0u8; 1];
        random.fill(&mut byte).map_err(|_| CredentialsError::Random)?;
        // Rejection sampling keeps every character equally likely (248 = 4 × 62).
        if usize::from(byte[0]) < ALPHABET.len() * 4 {
            password.push(char::from(ALPHABET[usize::from(byte[0]) % ALPHABET.len()]));
        }
    }
    Ok(password)
}

/// An htpasswd file with one bcrypt line per `(user, password)`.
pub fn htpasswd(accounts: &[(&str, &str)]) -> Result<String, CredentialsError> {
    let mut file = String::new();
    for (user, password) in accounts {
        let hash = bcrypt::hash(password, BCRYPT_COST).map_err(|source| CredentialsError::Hash {
            user: (*user).to_owned(),
            source,
        })?;
        file.push_str(&format!("{user}:{hash}\n"));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_long_alphanumeric_and_different() {
        let first = generate_password().unwrap();
        let second = generate_password().unwrap();
        assert_eq!(first.len(), PASSWORD_LENGTH);
        assert!(first.bytes().all(|byte| byte.is_ascii_alphanumeric()), "{first}");
        assert_ne!(first, second);
    }

    #[test]
    fn htpasswd_lines_verify_with_bcrypt() {
        let file = htpasswd(&[(PUSH_USER, "push-secret"), (PULL_USER, "pull-secret")]).unwrap();
        let lines: Vec<_> = file.lines().collect();
        assert_eq!(lines.len(), 2);
        let (user, hash) = lines[1].split_once(':').unwrap();
        assert_eq!(user, PULL_USER);
        assert!(hash.starts_with("$2"), "{hash}");
        assert!(bcrypt::verify("pull-secret", hash).unwrap());
        assert!(!bcrypt::verify("push-secret", hash).unwrap());
    }
}
