//! age encryption of whole archives: to the `encrypt_to` recipients when
//! writing, with the `--identity` file when reading (the file `age -d -i`
//! takes), so `age -d -i key.txt FILE | zstd -d | tar t` reads one too.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use anyhow::{Context, Result, bail};

/// What every age file starts with.
const AGE_MAGIC: &[u8] = b"age-encryption.org/v1\n";

/// An encryptor to these recipients; `None` when there are none.
///
/// # Errors
/// A recipient that is not an X25519 age recipient.
pub fn encryptor(recipients: &[String]) -> Result<Option<age::Encryptor>> {
    if recipients.is_empty() {
        return Ok(None);
    }
    let mut parsed: Vec<age::x25519::Recipient> = Vec::new();
    for r in recipients {
        match r.parse() {
            Ok(p) => parsed.push(p),
            Err(e) => bail!("x-berth.backup.encrypt_to: {r:?} is not an age recipient: {e}"),
        }
    }
    let refs = parsed.iter().map(|r| r as &dyn age::Recipient);
    age::Encryptor::with_recipients(refs)
        .map(Some)
        .map_err(|e| anyhow::anyhow!("cannot encrypt to x-berth.backup.encrypt_to: {e}"))
}

/// Whether the file is an age file.
///
/// # Errors
/// It cannot be read.
pub fn is_encrypted(path: &Path) -> Result<bool> {
    let mut head = [0u8; AGE_MAGIC.len()];
    let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut got = 0;
    while got < head.len() {
        match file.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }
    Ok(got == head.len() && head == AGE_MAGIC)
}

/// The archive's plain bytes: the file itself, or decrypted with the
/// identities in `identity`.
///
/// # Errors
/// An encrypted archive without an identity, or with identities none of
/// which can open it.
pub fn open(path: &Path, identity: Option<&Path>) -> Result<Box<dyn Read>> {
    let encrypted = is_encrypted(path)?;
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let input = BufReader::with_capacity(1 << 20, file);
    if !encrypted {
        return Ok(Box::new(input));
    }
    let Some(key) = identity else {
        bail!(
            "{} is encrypted (age): pass --identity KEYFILE, the identity file of one of its recipients",
            path.display()
        );
    };
    let identities = age::IdentityFile::from_file(key.display().to_string())
        .with_context(|| format!("cannot read the identity file {}", key.display()))?
        .into_identities()
        .map_err(|e| anyhow::anyhow!("{}: {e}", key.display()))?;
    let decryptor = age::Decryptor::new(input)
        .map_err(|e| anyhow::anyhow!("{} is not a readable age file: {e}", path.display()))?;
    let reader = decryptor
        .decrypt(identities.iter().map(|i| i.as_ref() as &dyn age::Identity))
        .map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => anyhow::anyhow!(
                "no identity in {} can decrypt {}: it was encrypted to other recipients",
                key.display(),
                path.display()
            ),
            e => anyhow::anyhow!("cannot decrypt {}: {e}", path.display()),
        })?;
    Ok(Box::new(reader))
}
