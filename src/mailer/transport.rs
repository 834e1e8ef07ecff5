//! Transports: one connection per worker. SMTP connections are opened on our
//! own TCP socket with TCP_NODELAY (lettre leaves Nagle on), and every
//! exchange is split into envelope and body stages, each under a timeout, so
//! a reply lost after the body is told apart from a failure before it. The
//! outbox transport writes each message as an .eml file.

use std::path::PathBuf;
use std::time::Duration;

use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::Error as SmtpError;
use tokio::net::TcpStream;

use super::OutgoingMessage;
use crate::config::{Settings, SmtpTls, TransportKind};

/// How far an SMTP exchange got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// MAIL, RCPT or DATA: nothing was accepted yet.
    Envelope,
    /// The body was (being) transmitted; acceptance is only known from the
    /// final reply.
    Body,
}

/// What happened to one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendResult {
    /// 2xx after the body.
    Accepted { code: u16, reply: String },
    /// A 4xx/5xx reply at some stage. `reusable` says whether the
    /// connection can carry the next message.
    Rejected {
        code: u16,
        reply: String,
        stage: Stage,
        reusable: bool,
    },
    /// The connection failed or timed out at `stage`.
    Lost { stage: Stage, detail: String },
}

impl SendResult {
    /// Can the connection carry another message?
    pub fn connection_usable(&self) -> bool {
        match self {
            SendResult::Accepted { .. } => true,
            SendResult::Rejected { reusable, .. } => *reusable,
            SendResult::Lost { .. } => false,
        }
    }
}

/// Opens connections of the configured kind.
#[derive(Debug, Clone)]
pub enum Connector {
    Smtp(SmtpConnector),
    Outbox { dir: PathBuf },
}

#[derive(Debug, Clone)]
pub struct SmtpConnector {
    host: String,
    port: u16,
    tls: SmtpTls,
    credentials: Option<(String, secrecy::SecretString)>,
    hello: ClientId,
    connect_timeout: Duration,
    send_timeout: Duration,
}

/// One open connection, owned by one worker.
pub enum Connection {
    Smtp(Box<AsyncSmtpConnection>, Duration),
    Outbox(PathBuf),
}

impl Connector {
    pub fn from_settings(settings: &Settings) -> Connector {
        match settings.transport.kind {
            TransportKind::Outbox => Connector::Outbox {
                dir: settings.transport.outbox_dir.clone(),
            },
            TransportKind::Smtp => {
                let smtp = &settings.smtp;
                Connector::Smtp(SmtpConnector {
                    host: smtp.host.clone(),
                    port: smtp.port,
                    tls: smtp.tls,
                    credentials: smtp.username.clone().zip(smtp.password.clone()),
                    hello: ClientId::Domain(settings.sending_domain().to_string()),
                    connect_timeout: Duration::from_secs(smtp.connect_timeout_secs),
                    send_timeout: Duration::from_secs(smtp.send_timeout_secs),
                })
            }
        }
    }

    /// A short description for logs (no secrets).
    pub fn describe(&self) -> String {
        match self {
            Connector::Smtp(s) => format!("smtp://{}:{}", s.host, s.port),
            Connector::Outbox { dir } => format!("outbox {}", dir.display()),
        }
    }

    pub async fn connect(&self) -> anyhow::Result<Connection> {
        match self {
            Connector::Outbox { dir } => {
                crate::private_fs::create_dir_all_async(dir)
                    .await
                    .map_err(|e| {
                        anyhow::anyhow!("creating outbox directory {}: {e}", dir.display())
                    })?;
                Ok(Connection::Outbox(dir.clone()))
            }
            Connector::Smtp(s) => s.connect().await,
        }
    }
}

impl SmtpConnector {
    async fn connect(&self) -> anyhow::Result<Connection> {
        let tls_params = || {
            TlsParameters::new(self.host.clone())
                .map_err(|e| anyhow::anyhow!("TLS set-up for {}: {e}", self.host))
        };
        let mut conn = match self.tls {
            SmtpTls::Tls => {
                // Implicit TLS goes through lettre's own connector.
                AsyncSmtpConnection::connect_tokio1(
                    (self.host.as_str(), self.port),
                    Some(self.connect_timeout),
                    &self.hello,
                    Some(tls_params()?),
                    None,
                )
                .await
                .map_err(|e| anyhow::anyhow!("connecting to {}:{}: {e}", self.host, self.port))?
            }
            SmtpTls::None | SmtpTls::Starttls => {
                let stream = tokio::time::timeout(
                    self.connect_timeout,
                    TcpStream::connect((self.host.as_str(), self.port)),
                )
                .await
                .map_err(|_| {
                    anyhow::anyhow!("connecting to {}:{}: timed out", self.host, self.port)
                })?
                .map_err(|e| anyhow::anyhow!("connecting to {}:{}: {e}", self.host, self.port))?;
                stream.set_nodelay(true)?;
                let mut conn = tokio::time::timeout(
                    self.connect_timeout,
                    AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello),
                )
                .await
                .map_err(|_| {
                    anyhow::anyhow!("greeting from {}:{}: timed out", self.host, self.port)
                })?
                .map_err(|e| anyhow::anyhow!("greeting from {}:{}: {e}", self.host, self.port))?;
                if self.tls == SmtpTls::Starttls {
                    conn.starttls(tls_params()?, &self.hello)
                        .await
                        .map_err(|e| anyhow::anyhow!("STARTTLS with {}: {e}", self.host))?;
                }
                conn
            }
        };
        if let Some((user, password)) = &self.credentials {
            use lettre::transport::smtp::authentication::{Credentials, Mechanism};
            use secrecy::ExposeSecret;
            let creds = Credentials::new(user.clone(), password.expose_secret().to_string());
            conn.auth(&[Mechanism::Plain, Mechanism::Login], &creds)
                .await
                .map_err(|e| anyhow::anyhow!("authenticating as {user}: {e}"))?;
        }
        Ok(Connection::Smtp(Box::new(conn), self.send_timeout))
    }
}

fn rejected_or_lost(err: SmtpError, stage: Stage) -> SendResult {
    match err.status() {
        Some(code) => {
            let code = u16::from(code);
            SendResult::Rejected {
                code,
                reply: std::error::Error::source(&err)
                    .map(|s| s.to_string())
                    .unwrap_or_default(),
                stage,
                // 421: the server is closing the connection.
                reusable: code != 421,
            }
        }
        None => SendResult::Lost {
            stage,
            detail: err.to_string(),
        },
    }
}

impl Connection {
    /// Send one message. `file_stem` names the outbox file.
    pub async fn send(&mut self, message: &OutgoingMessage, file_stem: &str) -> SendResult {
        match self {
            Connection::Outbox(dir) => write_outbox(dir, message, file_stem).await,
            Connection::Smtp(conn, timeout) => smtp_send(conn, *timeout, message).await,
        }
    }

    /// Say goodbye politely (best effort, bounded).
    pub async fn close(self) {
        if let Connection::Smtp(mut conn, _) = self {
            let _ = tokio::time::timeout(Duration::from_secs(2), conn.quit()).await;
        }
    }
}

async fn smtp_send(
    conn: &mut AsyncSmtpConnection,
    timeout: Duration,
    message: &OutgoingMessage,
) -> SendResult {
    let envelope = message.message.envelope();
    let bytes = message.formatted();
    let envelope_stage = async {
        conn.command(Mail::new(envelope.from().cloned(), vec![]))
            .await?;
        for to in envelope.to() {
            conn.command(Rcpt::new(to.clone(), vec![])).await?;
        }
        conn.command(Data).await
    };
    match tokio::time::timeout(timeout, envelope_stage).await {
        Err(_) => {
            return SendResult::Lost {
                stage: Stage::Envelope,
                detail: format!("no reply within {}s", timeout.as_secs()),
            }
        }
        Ok(Err(e)) => {
            let mut result = rejected_or_lost(e, Stage::Envelope);
            if let SendResult::Rejected { reusable, .. } = &mut result {
                // Reset the transaction so the connection can carry the next
                // message; if that fails, the connection is done.
                if *reusable {
                    *reusable = matches!(
                        tokio::time::timeout(timeout, conn.command(Rset)).await,
                        Ok(Ok(_))
                    );
                }
            }
            return result;
        }
        Ok(Ok(_)) => {}
    }
    let payload = async {
        match std::str::from_utf8(bytes) {
            Ok(text) => conn.command(DataPayload(text)).await,
            Err(_) => conn.message(bytes).await,
        }
    };
    match tokio::time::timeout(timeout, payload).await {
        Err(_) => SendResult::Lost {
            stage: Stage::Body,
            detail: format!("no reply to the message within {}s", timeout.as_secs()),
        },
        Ok(Err(e)) => rejected_or_lost(e, Stage::Body),
        Ok(Ok(response)) => SendResult::Accepted {
            code: u16::from(response.code()),
            reply: response.message().collect::<Vec<_>>().join(" "),
        },
    }
}

/// The message content of a DATA transaction, dot-stuffed and terminated by
/// `CRLF . CRLF`, written with a few large copies. lettre's own codec
/// (`message`) pushes byte by byte and took a quarter of the sending CPU;
/// `command` writes any `Display` as one buffer, so the content goes
/// through it instead. (Messages are ASCII: headers are RFC 2047 encoded,
/// bodies quoted-printable.)
struct DataPayload<'a>(&'a str);

impl std::fmt::Display for DataPayload<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = self.0;
        if text.starts_with('.') {
            f.write_str(".")?;
        }
        let mut rest = text;
        while let Some(at) = rest.find("\r\n.") {
            // Up to and including the dot, then the stuffed second dot.
            f.write_str(&rest[..at + 3])?;
            f.write_str(".")?;
            rest = &rest[at + 3..];
        }
        f.write_str(rest)?;
        if !text.ends_with("\r\n") {
            f.write_str("\r\n")?;
        }
        f.write_str(".\r\n")
    }
}

async fn write_outbox(
    dir: &std::path::Path,
    message: &OutgoingMessage,
    file_stem: &str,
) -> SendResult {
    let safe: String = file_stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let path = dir.join(format!("{safe}.eml"));
    let tmp = dir.join(format!(".{safe}.eml.tmp"));
    let bytes = message.formatted();
    let written = async {
        crate::private_fs::write(&tmp, bytes).await?;
        tokio::fs::rename(&tmp, &path).await
    }
    .await;
    match written {
        Ok(()) => SendResult::Accepted {
            code: 250,
            reply: format!("written to {}", path.display()),
        },
        Err(e) => SendResult::Lost {
            stage: Stage::Envelope,
            detail: format!("writing {}: {e}", path.display()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::DataPayload;

    #[test]
    fn data_payload_is_dot_stuffed_and_terminated() {
        assert_eq!(
            DataPayload("a\r\n.b\r\n..c\r\n").to_string(),
            "a\r\n..b\r\n...c\r\n.\r\n"
        );
        assert_eq!(DataPayload(".x").to_string(), "..x\r\n.\r\n");
        assert_eq!(DataPayload("x\r\n.").to_string(), "x\r\n..\r\n.\r\n");
    }
}
