//! Outgoing e-mail: one-time PINs. Over SMTP when `--smtp-url` is set
//! (STARTTLS whenever the server offers it), otherwise into an outbox folder
//! as `.eml` files, so a fresh install can sign people in without mail setup.

use std::path::PathBuf;

use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("invalid mail setting: {0}")]
    Setting(String),
    #[error("could not build the message: {0}")]
    Message(#[from] lettre::error::Error),
    #[error("SMTP delivery failed: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
    #[error("could not write to the outbox: {0}")]
    Outbox(#[from] std::io::Error),
}

#[derive(Clone)]
pub enum Mailer {
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        from: Mailbox,
    },
    Outbox {
        dir: PathBuf,
        from: Mailbox,
    },
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mailer::Smtp { .. } => f.write_str("Mailer::Smtp"),
            Mailer::Outbox { dir, .. } => write!(f, "Mailer::Outbox({})", dir.display()),
        }
    }
}

impl Mailer {
    /// `smtp://[user:pass@]host[:port]` (STARTTLS when offered), `smtps://…`
    /// (TLS from the start), or no URL for the outbox folder.
    pub fn new(smtp_url: Option<&str>, outbox: PathBuf, from: &str) -> Result<Self, MailError> {
        let from: Mailbox = from
            .parse()
            .map_err(|e| MailError::Setting(format!("--mail-from {from:?}: {e}")))?;
        let Some(url) = smtp_url else {
            return Ok(Mailer::Outbox { dir: outbox, from });
        };
        let (implicit_tls, rest) = if let Some(rest) = url.strip_prefix("smtps://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("smtp://") {
            (false, rest)
        } else {
            return Err(MailError::Setting(format!(
                "--smtp-url {url:?} must start with smtp:// or smtps://"
            )));
        };
        let (credentials, address) = match rest.rsplit_once('@') {
            Some((creds, address)) => (Some(creds), address),
            None => (None, rest),
        };
        let address = address.trim_end_matches('/');
        let (host, port) = match address.rsplit_once(':') {
            Some((host, port)) => (
                host,
                port.parse::<u16>().map_err(|_| {
                    MailError::Setting(format!("--smtp-url port {port:?} is not a number"))
                })?,
            ),
            None => (address, if implicit_tls { 465 } else { 25 }),
        };
        let tls = TlsParameters::new(host.to_string())?;
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .tls(if implicit_tls {
                Tls::Wrapper(tls)
            } else {
                Tls::Opportunistic(tls)
            });
        if let Some(creds) = credentials {
            let (user, pass) = creds.split_once(':').unwrap_or((creds, ""));
            builder =
                builder.credentials(lettre::transport::smtp::authentication::Credentials::new(
                    user.to_string(),
                    pass.to_string(),
                ));
        }
        Ok(Mailer::Smtp {
            transport: builder.build(),
            from,
        })
    }

    pub async fn send_pin(
        &self,
        to: &str,
        code: &str,
        app_name: &str,
        minutes: i64,
    ) -> Result<(), MailError> {
        let to: Mailbox = to
            .parse()
            .map_err(|e| MailError::Setting(format!("recipient {to:?}: {e}")))?;
        let from = match self {
            Mailer::Smtp { from, .. } | Mailer::Outbox { from, .. } => from.clone(),
        };
        let body = format!(
            "Your sign-in code for {app_name} is:\n\n    {code}\n\n\
             It expires in {minutes} minutes and works once. If you did not ask for it, ignore this message.\n"
        );
        let message = Message::builder()
            .from(from)
            .to(to)
            .subject(format!("{code} is your sign-in code for {app_name}"))
            .header(ContentType::TEXT_PLAIN)
            .body(body)?;
        match self {
            Mailer::Smtp { transport, .. } => {
                transport.send(message).await?;
            }
            Mailer::Outbox { dir, .. } => {
                let name = format!(
                    "{}-{}.eml",
                    crate::domain::Timestamp::now().micros(),
                    crate::domain::activity::new_ray_id()
                );
                let path = dir.join(name);
                // The message holds a live sign-in code: owner-only folder and file.
                let (dir, file, bytes) = (dir.clone(), path.clone(), message.formatted());
                tokio::task::spawn_blocking(move || {
                    crate::private_files::create_dir_owner_only(&dir)?;
                    crate::private_files::write_new_owner_only(&file, &bytes)
                })
                .await
                .map_err(std::io::Error::other)??;
                tracing::info!(path = %path.display(), "sign-in code written to the outbox");
            }
        }
        Ok(())
    }
}
