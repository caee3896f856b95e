//! Making an application-token signing key: a 2048-bit RSA key pair from
//! aws-lc (constant-time private-key operations), its JWK parts and a
//! self-signed certificate for validators that want `public_cert`.

use std::str::FromStr;
use std::time::Duration;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use x509_cert::der::asn1::BitString;
use x509_cert::der::oid::db::rfc5912::SHA_256_WITH_RSA_ENCRYPTION;
use x509_cert::der::pem::LineEnding;
use x509_cert::der::{Encode, EncodePem, asn1::Null};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::time::Validity;
use x509_cert::{Certificate, TbsCertificate, Version};

use crate::domain::Timestamp;
use crate::store::keys::StoredKey;
use crate::store::{StoreError, StoreResult};

const CERTIFICATE_LIFETIME: Duration = Duration::from_secs(2 * 365 * 24 * 3600);
const CERTIFICATE_SUBJECT: &str = "CN=accessd application token signing key";

fn failed(what: &str, err: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("signing key {what}: {err}"))
}

/// A fresh signing key for `account_id`. Takes a moment of CPU: call it off
/// the async workers.
pub fn generate(account_id: String) -> StoreResult<StoredKey> {
    let pair = KeyPair::generate(KeySize::Rsa2048).map_err(|e| failed("generation", e))?;
    let pkcs8 = pair.as_der().map_err(|e| failed("encoding", e))?;
    let private_pem =
        x509_cert::der::pem::encode_string("PRIVATE KEY", LineEnding::LF, pkcs8.as_ref())
            .map_err(|e| failed("encoding", e))?;
    let public = pair.public_key();
    let spki = public.as_der().map_err(|e| failed("encoding", e))?;
    let certificate_pem = self_signed_certificate(&pair, spki.as_ref())?;
    Ok(StoredKey {
        kid: hex::encode(Sha256::digest(spki.as_ref())),
        account_id,
        private_pem,
        certificate_pem,
        public_n: URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
        public_e: URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
        created_at: Timestamp::now(),
        retired_at: None,
    })
}

/// An X.509 v3 certificate of the key, issued by itself, valid two years.
fn self_signed_certificate(pair: &KeyPair, spki_der: &[u8]) -> StoreResult<String> {
    let algorithm = AlgorithmIdentifierOwned {
        oid: SHA_256_WITH_RSA_ENCRYPTION,
        parameters: Some(Null.into()),
    };
    let serial_bytes: [u8; 8] = rand::Rng::r#gen(&mut rand::rngs::OsRng);
    // A leading 0x01 keeps the serial positive and of fixed length.
    let serial = SerialNumber::new(&[&[0x01], &serial_bytes[..]].concat())
        .map_err(|e| failed("certificate serial", e))?;
    let name = Name::from_str(CERTIFICATE_SUBJECT).map_err(|e| failed("certificate name", e))?;
    let tbs = TbsCertificate {
        version: Version::V3,
        serial_number: serial,
        signature: algorithm.clone(),
        issuer: name.clone(),
        validity: Validity::from_now(CERTIFICATE_LIFETIME)
            .map_err(|e| failed("certificate validity", e))?,
        subject: name,
        subject_public_key_info: SubjectPublicKeyInfoOwned::try_from(spki_der)
            .map_err(|e| failed("certificate key", e))?,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: None,
    };
    let tbs_der = tbs
        .to_der()
        .map_err(|e| failed("certificate encoding", e))?;
    let mut signature = vec![0; pair.public_modulus_len()];
    let rng = aws_lc_rs::rand::SystemRandom::new();
    pair.sign(&RSA_PKCS1_SHA256, &rng, &tbs_der, &mut signature)
        .map_err(|e| failed("certificate signature", e))?;
    let certificate = Certificate {
        tbs_certificate: tbs,
        signature_algorithm: algorithm,
        signature: BitString::from_bytes(&signature)
            .map_err(|e| failed("certificate signature", e))?,
    };
    certificate
        .to_pem(LineEnding::LF)
        .map_err(|e| failed("certificate encoding", e))
}
