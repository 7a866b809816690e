//! The v1 crypto envelope.
//!
//! - The client wraps a fresh 32-byte AES key with RSA-OAEP (SHA-256, MGF1-SHA-256, no
//!   label) to the server's RSA-2048 key.
//! - Content and results travel as base64(IV(16) || AES-256-CBC-PKCS7(bytes)).
//! - `SHA256` is the lowercase hex SHA-256 of the `content` string as sent.
//!
//! - v2 seals pages, forms, libraries and results with AES-256-GCM instead
//!   ([`AesKey::seal_gcm`]), the task and part bound in as associated data.
//!
//! RSA decryption uses aws-lc-rs, which is constant-time (the `rsa` crate is not).

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use aws_lc_rs::cipher::{
    DecryptionContext, PaddedBlockDecryptingKey, PaddedBlockEncryptingKey, UnboundCipherKey, AES_256,
};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::rsa::{
    OaepPrivateDecryptingKey, OaepPublicEncryptingKey, PrivateDecryptingKey, PublicEncryptingKey,
    OAEP_SHA256_MGF1SHA256,
};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

pub const AES_KEY_BYTES: usize = 32;
const IV_BYTES: usize = 16;
/// AES-GCM's 96-bit nonce, random per sealing: 2^32 sealings under one key keep the
/// collision chance under 2^-32 (NIST SP 800-38D), and a task key seals at most 52.
pub const GCM_NONCE_BYTES: usize = 12;
pub const GCM_TAG_BYTES: usize = 16;
const AES_BLOCK: usize = 16;
/// v1 clients use RSA-2048; smaller keys are refused as too weak.
const MIN_RSA_BITS: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("not valid base64")]
    Base64,
    #[error("the RSA-wrapped key does not decrypt with the server key")]
    RsaDecryption,
    #[error("the unwrapped AES key is {0} bytes, not {AES_KEY_BYTES}")]
    AesKeyLength(usize),
    #[error("the ciphertext does not decrypt under this AES key")]
    AesDecryption,
    #[error("encryption failed")]
    Encryption,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("no PEM block found (expected -----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----)")]
    NoPem,
    #[error("the PEM body is not valid base64")]
    PemBase64,
    #[error("the key is not an RSA private key in PKCS#8 or PKCS#1 form: {0}")]
    Rejected(String),
    #[error("the RSA key has {0} bits; at least {MIN_RSA_BITS} are required")]
    TooSmall(usize),
    #[error("the public key could not be encoded")]
    PublicKey,
}

/// Lowercase hex SHA-256, as the protocol's `SHA256` field carries it.
pub fn sha256_hex(data: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let mut hex = String::with_capacity(64);
    for byte in digest.as_ref() {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

/// Base64 SHA-256, as Content-Security-Policy hashes and HTTP digests carry it.
pub fn sha256_base64(data: &[u8]) -> String {
    BASE64.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data))
}

/// The server's RSA key pair: unwraps clients' AES keys, and publishes its public half.
pub struct ServerKey {
    private: OaepPrivateDecryptingKey,
    public_pem: String,
}

impl std::fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerKey").field("bits", &self.private.key_size_bits()).finish_non_exhaustive()
    }
}

impl ServerKey {
    /// Reads a PEM private key: PKCS#8 (`BEGIN PRIVATE KEY`, what `openssl genpkey` writes)
    /// or PKCS#1 (`BEGIN RSA PRIVATE KEY`, what older tools and the original service used).
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let (label, der) = pem_decode(pem)?;
        let pkcs8 = if label == "RSA PRIVATE KEY" { pkcs1_to_pkcs8(&der)? } else { der };
        let key = PrivateDecryptingKey::from_pkcs8(&pkcs8).map_err(|e| KeyError::Rejected(e.to_string()))?;
        if key.key_size_bits() < MIN_RSA_BITS {
            return Err(KeyError::TooSmall(key.key_size_bits()));
        }
        let public_der = key.public_key().as_der().map_err(|_| KeyError::PublicKey)?;
        let public_pem = pem_encode("PUBLIC KEY", public_der.as_ref());
        let private = OaepPrivateDecryptingKey::new(key).map_err(|e| KeyError::Rejected(e.to_string()))?;
        Ok(Self { private, public_pem })
    }

    /// The public key as clients encrypt to it: PEM, SubjectPublicKeyInfo.
    pub fn public_key_pem(&self) -> &str {
        &self.public_pem
    }

    /// Unwraps a client's AES key from the base64 of its RSA-OAEP ciphertext.
    pub fn unwrap_aes_key(&self, wrapped_base64: &str) -> Result<AesKey, CryptoError> {
        let wrapped = BASE64.decode(wrapped_base64.trim()).map_err(|_| CryptoError::Base64)?;
        let mut out = vec![0u8; self.private.min_output_size()];
        let key = self
            .private
            .decrypt(&OAEP_SHA256_MGF1SHA256, &wrapped, &mut out, None)
            .map_err(|_| CryptoError::RsaDecryption)?;
        AesKey::from_bytes(key)
    }
}

/// A fresh RSA-2048 private key as PKCS#8 PEM: for development keys and tests.
pub fn generate_private_key_pem() -> Result<String, KeyError> {
    let key = PrivateDecryptingKey::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
        .map_err(|e| KeyError::Rejected(e.to_string()))?;
    let der = key.as_der().map_err(|_| KeyError::PublicKey)?;
    Ok(pem_encode("PRIVATE KEY", der.as_ref()))
}

/// The client side of the key wrap: what a v1 client does with the server's public key.
/// The service itself never needs it; tests and tools that act as clients do.
pub struct ClientWrap {
    public: OaepPublicEncryptingKey,
}

impl ClientWrap {
    pub fn from_public_pem(pem: &str) -> Result<Self, KeyError> {
        let (_, der) = pem_decode(pem)?;
        let key = PublicEncryptingKey::from_der(&der).map_err(|e| KeyError::Rejected(e.to_string()))?;
        let public = OaepPublicEncryptingKey::new(key).map_err(|e| KeyError::Rejected(e.to_string()))?;
        Ok(Self { public })
    }

    /// base64 of RSA-OAEP(SHA-256) of the key bytes, as the `aes_key` field carries it.
    pub fn wrap(&self, key: &[u8]) -> Result<String, CryptoError> {
        let mut out = vec![0u8; self.public.ciphertext_size()];
        let wrapped =
            self.public.encrypt(&OAEP_SHA256_MGF1SHA256, key, &mut out, None).map_err(|_| CryptoError::Encryption)?;
        Ok(BASE64.encode(wrapped))
    }
}

/// A client's AES-256 key. Never stored in the clear: it travels wrapped.
#[derive(Clone, PartialEq, Eq)]
pub struct AesKey([u8; AES_KEY_BYTES]);

impl std::fmt::Debug for AesKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AesKey(..)")
    }
}

impl AesKey {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        let key: [u8; AES_KEY_BYTES] = bytes.try_into().map_err(|_| CryptoError::AesKeyLength(bytes.len()))?;
        Ok(Self(key))
    }

    pub fn generate() -> Result<Self, CryptoError> {
        let mut key = [0u8; AES_KEY_BYTES];
        SystemRandom::new().fill(&mut key).map_err(|_| CryptoError::Encryption)?;
        Ok(Self(key))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// IV(16, fresh) || AES-256-CBC-PKCS7(plaintext).
    pub fn seal(&self, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let key = UnboundCipherKey::new(&AES_256, &self.0).map_err(|_| CryptoError::Encryption)?;
        let key = PaddedBlockEncryptingKey::cbc_pkcs7(key).map_err(|_| CryptoError::Encryption)?;
        let mut body = plaintext.to_vec();
        let context = key.encrypt(&mut body).map_err(|_| CryptoError::Encryption)?;
        let iv: &[u8] = (&context).try_into().map_err(|_| CryptoError::Encryption)?;
        let mut out = Vec::with_capacity(IV_BYTES + body.len());
        out.extend_from_slice(iv);
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// The inverse of [`AesKey::seal`].
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < IV_BYTES + AES_BLOCK || !(sealed.len() - IV_BYTES).is_multiple_of(AES_BLOCK) {
            return Err(CryptoError::AesDecryption);
        }
        let (iv, body) = sealed.split_at(IV_BYTES);
        let iv: [u8; IV_BYTES] = iv.try_into().map_err(|_| CryptoError::AesDecryption)?;
        let key = UnboundCipherKey::new(&AES_256, &self.0).map_err(|_| CryptoError::AesDecryption)?;
        let key = PaddedBlockDecryptingKey::cbc_pkcs7(key).map_err(|_| CryptoError::AesDecryption)?;
        let mut body = body.to_vec();
        let plain = key
            .decrypt(&mut body, DecryptionContext::Iv128(FixedLength::from(iv)))
            .map_err(|_| CryptoError::AesDecryption)?;
        Ok(plain.to_vec())
    }

    /// v2's authenticated sealing: nonce(12, fresh) || AES-256-GCM(plaintext) || tag(16),
    /// with `aad` (the task and the part, see `v2::aad`) bound in, so that a sealed part
    /// cannot be moved to another task or position, nor altered, without failing to open.
    pub fn seal_gcm(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let key = self.gcm_key().map_err(|_| CryptoError::Encryption)?;
        let mut nonce = [0u8; GCM_NONCE_BYTES];
        SystemRandom::new().fill(&mut nonce).map_err(|_| CryptoError::Encryption)?;
        let mut body = Vec::with_capacity(GCM_NONCE_BYTES + plaintext.len() + GCM_TAG_BYTES);
        body.extend_from_slice(plaintext);
        key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut body)
            .map_err(|_| CryptoError::Encryption)?;
        body.splice(0..0, nonce);
        Ok(body)
    }

    /// The inverse of [`AesKey::seal_gcm`], in place: a page of 20 MiB is not copied.
    pub fn open_gcm(&self, mut sealed: Vec<u8>, aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < GCM_NONCE_BYTES + GCM_TAG_BYTES {
            return Err(CryptoError::AesDecryption);
        }
        let nonce: [u8; GCM_NONCE_BYTES] =
            sealed[..GCM_NONCE_BYTES].try_into().map_err(|_| CryptoError::AesDecryption)?;
        let key = self.gcm_key().map_err(|_| CryptoError::AesDecryption)?;
        let plain = key
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut sealed[GCM_NONCE_BYTES..])
            .map_err(|_| CryptoError::AesDecryption)?
            .len();
        sealed.copy_within(GCM_NONCE_BYTES..GCM_NONCE_BYTES + plain, 0);
        sealed.truncate(plain);
        Ok(sealed)
    }

    fn gcm_key(&self) -> Result<LessSafeKey, aws_lc_rs::error::Unspecified> {
        Ok(LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &self.0)?))
    }

    /// [`AesKey::seal`] as base64: the shape of `content` and of `result`.
    pub fn seal_base64(&self, plaintext: &[u8]) -> Result<String, CryptoError> {
        Ok(BASE64.encode(self.seal(plaintext)?))
    }

    pub fn open_base64(&self, sealed_base64: &str) -> Result<Vec<u8>, CryptoError> {
        let sealed = BASE64.decode(sealed_base64.trim()).map_err(|_| CryptoError::Base64)?;
        self.open(&sealed)
    }
}

/// The label and DER body of the first PEM block in `pem` (RFC 7468), with any text
/// before or after it (a comment, a certificate) left out.
fn pem_decode(pem: &str) -> Result<(String, Vec<u8>), KeyError> {
    let start = pem.find("-----BEGIN ").ok_or(KeyError::NoPem)?;
    let block = &pem[start..];
    let end_line = block.find("-----END ").ok_or(KeyError::NoPem)? + "-----END ".len();
    let end = end_line + block[end_line..].find("-----").ok_or(KeyError::NoPem)? + "-----".len();
    let (label, der) = pem_rfc7468::decode_vec(&block.as_bytes()[..end]).map_err(|e| match e {
        pem_rfc7468::Error::Base64(_) => KeyError::PemBase64,
        _ => KeyError::NoPem,
    })?;
    Ok((label.to_owned(), der))
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    // Only a label with characters RFC 7468 forbids fails, and ours are constants.
    pem_rfc7468::encode_string(label, pem_rfc7468::LineEnding::LF, der).unwrap_or_default()
}

/// Wraps a PKCS#1 RSAPrivateKey in a PKCS#8 PrivateKeyInfo, the only form aws-lc-rs takes.
fn pkcs1_to_pkcs8(pkcs1: &[u8]) -> Result<Vec<u8>, KeyError> {
    use pkcs8::der::asn1::AnyRef;
    use pkcs8::der::Encode;
    const RSA_ENCRYPTION: pkcs8::ObjectIdentifier = pkcs8::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
    let algorithm = pkcs8::AlgorithmIdentifierRef { oid: RSA_ENCRYPTION, parameters: Some(AnyRef::NULL) };
    pkcs8::PrivateKeyInfo::new(algorithm, pkcs1).to_der().map_err(|e| KeyError::Rejected(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    /// One generated key for the module: RSA generation takes a noticeable fraction of a second.
    fn server_key() -> &'static (ServerKey, String) {
        static KEY: OnceLock<(ServerKey, String)> = OnceLock::new();
        KEY.get_or_init(|| {
            let pem = generate_private_key_pem().unwrap();
            (ServerKey::from_pem(&pem).unwrap(), pem)
        })
    }

    #[test]
    fn sha256_matches_the_known_vector() {
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn base64_sha256_matches_the_known_vector() {
        assert_eq!(sha256_base64(b"abc"), "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=");
    }

    #[test]
    fn a_client_wrapped_key_unwraps_to_the_same_bytes() {
        let (server, _) = server_key();
        let client = ClientWrap::from_public_pem(server.public_key_pem()).unwrap();
        let key = AesKey::generate().unwrap();
        let wrapped = client.wrap(key.as_bytes()).unwrap();
        assert_eq!(server.unwrap_aes_key(&wrapped).unwrap(), key);
    }

    #[test]
    fn wrong_wrapped_keys_are_typed_errors() {
        let (server, _) = server_key();
        let client = ClientWrap::from_public_pem(server.public_key_pem()).unwrap();
        assert_eq!(server.unwrap_aes_key("***"), Err(CryptoError::Base64));
        assert_eq!(server.unwrap_aes_key("AAAA"), Err(CryptoError::RsaDecryption));
        let short = client.wrap(&[7u8; 16]).unwrap();
        assert_eq!(server.unwrap_aes_key(&short), Err(CryptoError::AesKeyLength(16)));
    }

    #[test]
    fn sealing_round_trips_and_uses_a_fresh_iv() {
        let key = AesKey::generate().unwrap();
        let a = key.seal_base64(b"{\"x\": 1}").unwrap();
        let b = key.seal_base64(b"{\"x\": 1}").unwrap();
        assert_ne!(a, b);
        assert_eq!(key.open_base64(&a).unwrap(), b"{\"x\": 1}");
        let other = AesKey::generate().unwrap();
        // A wrong key fails the padding check almost always; when it does not, the bytes differ.
        assert_ne!(other.open_base64(&a).ok().as_deref(), Some(&b"{\"x\": 1}"[..]));
        assert_eq!(key.open(&[0u8; 20]), Err(CryptoError::AesDecryption));
        assert_eq!(key.open_base64("!!"), Err(CryptoError::Base64));
    }

    #[test]
    fn gcm_sealing_binds_its_associated_data_and_detects_any_change() {
        let key = AesKey::generate().unwrap();
        let sealed = key.seal_gcm(b"page bytes", b"doc_ab/0").unwrap();
        assert_eq!(sealed.len(), GCM_NONCE_BYTES + 10 + GCM_TAG_BYTES);
        assert_eq!(key.open_gcm(sealed.clone(), b"doc_ab/0").unwrap(), b"page bytes");
        assert_eq!(key.open_gcm(sealed.clone(), b"doc_ab/1"), Err(CryptoError::AesDecryption));
        assert_eq!(AesKey::generate().unwrap().open_gcm(sealed.clone(), b"doc_ab/0"), Err(CryptoError::AesDecryption));
        let mut flipped = sealed.clone();
        flipped[GCM_NONCE_BYTES] ^= 1;
        assert_eq!(key.open_gcm(flipped, b"doc_ab/0"), Err(CryptoError::AesDecryption));
        assert_eq!(key.open_gcm(sealed[..20].to_vec(), b"doc_ab/0"), Err(CryptoError::AesDecryption));
        assert_ne!(key.seal_gcm(b"page bytes", b"doc_ab/0").unwrap(), sealed, "a fresh nonce each time");
    }

    #[test]
    fn pkcs1_keys_are_accepted_like_pkcs8() {
        let (server, pkcs8_pem) = server_key();
        // Strip the PKCS#8 wrapper: the OCTET STRING at the end holds the PKCS#1 key.
        let (_, der) = pem_decode(pkcs8_pem).unwrap();
        // SEQUENCE header (4) + version (3) + AlgorithmIdentifier (15) + OCTET STRING header (4)
        let pkcs1 = &der[26..];
        assert_eq!(pkcs1_to_pkcs8(pkcs1).unwrap(), der);
        let again = ServerKey::from_pem(&pem_encode("RSA PRIVATE KEY", pkcs1)).unwrap();
        assert_eq!(again.public_key_pem(), server.public_key_pem());
    }

    #[test]
    fn bad_pem_is_a_typed_error() {
        assert_eq!(ServerKey::from_pem("nothing here").unwrap_err(), KeyError::NoPem);
        let junk = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert!(matches!(ServerKey::from_pem(junk).unwrap_err(), KeyError::Rejected(_)));
    }
}
