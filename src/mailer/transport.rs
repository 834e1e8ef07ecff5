//! Transports: one connection per worker. SMTP connections are opened on our
//! own TCP socket with TCP_NODELAY (lettre leaves Nagle on), and every
//! exchange is split into envelope and body stages, each under a timeout, so
//! a reply lost after the body is told apart from a failure before it. The
//! outbox transport writes each message as an .eml file.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, TlsParameters};
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::{ClientId, Extension};
use lettre::transport::smtp::response::Response;
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
    /// A reused connection failed before the server accepted MAIL FROM
    /// (typically closed by the server while idle): nothing was handed
    /// over, and the recipient is not at fault. Reconnect and send again.
    Stale { detail: String },
}

impl SendResult {
    /// Can the connection carry another message?
    pub fn connection_usable(&self) -> bool {
        match self {
            SendResult::Accepted { .. } => true,
            SendResult::Rejected { reusable, .. } => *reusable,
            SendResult::Lost { .. } | SendResult::Stale { .. } => false,
        }
    }
}

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ConnectError {
    pub message: String,
    /// Retrying cannot help (untrusted certificate, STARTTLS not offered,
    /// credentials refused or not to be sent in clear): stop at once.
    pub permanent: bool,
}

impl ConnectError {
    fn transient(message: String) -> ConnectError {
        ConnectError {
            message,
            permanent: false,
        }
    }

    fn permanent(message: String) -> ConnectError {
        ConnectError {
            message,
            permanent: true,
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
    allow_plaintext_auth: bool,
    /// Pipeline envelopes when the server offers it (`smtp.pipelining`).
    pipelining: bool,
    /// Extra trusted roots (`smtp.ca_file`): its path and PEM contents.
    ca: Option<(PathBuf, Arc<Vec<u8>>)>,
    hello: ClientId,
    connect_timeout: Duration,
    send_timeout: Duration,
}

/// One open connection, owned by one worker.
pub enum Connection {
    Smtp(Box<SmtpConnection>),
    Outbox(PathBuf),
}

/// An open SMTP session and what the sender needs to know about it.
pub struct SmtpConnection {
    conn: AsyncSmtpConnection,
    timeout: Duration,
    /// Messages already carried: a failure before MAIL FROM on a reused
    /// connection is the connection's fault, not the recipient's.
    carried: u64,
    /// The server advertised PIPELINING (RFC 2920): MAIL, RCPT and DATA go
    /// out in one write, and the envelope costs one round trip, not three.
    pipelining: bool,
}

impl Connector {
    pub fn from_settings(settings: &Settings) -> Connector {
        match settings.transport.kind {
            TransportKind::Outbox => Connector::Outbox {
                dir: settings.transport.outbox_dir.clone(),
            },
            TransportKind::Smtp => {
                let smtp = &settings.smtp;
                // The file was checked when the settings were loaded; a
                // read failure now is reported at connection time.
                let ca = smtp.ca_file.as_ref().map(|path| {
                    (
                        path.clone(),
                        Arc::new(std::fs::read(path).unwrap_or_default()),
                    )
                });
                Connector::Smtp(SmtpConnector {
                    host: smtp.host.clone(),
                    port: smtp.port,
                    tls: smtp.tls,
                    credentials: smtp.username.clone().zip(smtp.password.clone()),
                    allow_plaintext_auth: smtp.allow_plaintext_auth,
                    pipelining: smtp.pipelining,
                    ca,
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

    /// Open a connection. Every stage (TCP connect, TLS handshake,
    /// greeting, EHLO, STARTTLS, AUTH) is bounded by
    /// `smtp.connect_timeout_secs`.
    pub async fn connect(&self) -> Result<Connection, ConnectError> {
        match self {
            Connector::Outbox { dir } => {
                crate::private_fs::create_dir_all_async(dir)
                    .await
                    .map_err(|e| {
                        ConnectError::transient(format!(
                            "creating outbox directory {}: {e}",
                            dir.display()
                        ))
                    })?;
                Ok(Connection::Outbox(dir.clone()))
            }
            Connector::Smtp(s) => s.connect().await,
        }
    }
}

/// An error and its sources on one line.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

impl SmtpConnector {
    /// Run one connection stage under the connect timeout.
    async fn stage<T>(
        &self,
        what: &str,
        fut: impl std::future::Future<Output = Result<T, SmtpError>>,
    ) -> Result<T, ConnectError> {
        match tokio::time::timeout(self.connect_timeout, fut).await {
            Err(_) => Err(ConnectError::transient(format!(
                "{what} with {}:{}: no reply within {}s",
                self.host,
                self.port,
                self.connect_timeout.as_secs()
            ))),
            Ok(Err(e)) => Err(self.classify(what, &e)),
            Ok(Ok(v)) => Ok(v),
        }
    }

    /// Turn a lettre error at a connection stage into a [`ConnectError`],
    /// saying what the operator can do when retrying cannot help.
    fn classify(&self, what: &str, e: &SmtpError) -> ConnectError {
        let detail = chain(e);
        let lower = detail.to_ascii_lowercase();
        if lower.contains("certificate") || lower.contains("unknownissuer") {
            return ConnectError::permanent(format!(
                "{what} with {}:{}: the server's TLS certificate is not trusted for `{}` ({detail}); \
                 if the relay uses its own CA, put that CA's certificate (PEM) in smtp.ca_file, \
                 and make sure smtp.host is a name the certificate carries",
                self.host, self.port, self.host
            ));
        }
        if e.is_permanent() {
            return ConnectError::permanent(format!(
                "{what} with {}:{}: {detail}",
                self.host, self.port
            ));
        }
        ConnectError::transient(format!("{what} with {}:{}: {detail}", self.host, self.port))
    }

    fn tls_parameters(&self) -> Result<TlsParameters, ConnectError> {
        let mut builder = TlsParameters::builder(self.host.clone());
        if let Some((path, pem)) = &self.ca {
            let cert = Certificate::from_pem(pem).map_err(|e| {
                ConnectError::permanent(format!(
                    "smtp.ca_file {}: no usable PEM certificate ({e})",
                    path.display()
                ))
            })?;
            builder = builder.add_root_certificate(cert);
        }
        builder.build_rustls().map_err(|e| {
            ConnectError::permanent(format!("TLS set-up for {}: {}", self.host, chain(&e)))
        })
    }

    async fn connect(&self) -> Result<Connection, ConnectError> {
        let mut conn = match self.tls {
            SmtpTls::Tls => {
                // Implicit TLS goes through lettre's own connector (TCP
                // connect, handshake, greeting, EHLO), bounded as a whole.
                let tls = self.tls_parameters()?;
                self.stage(
                    "TLS handshake, greeting and EHLO",
                    AsyncSmtpConnection::connect_tokio1(
                        (self.host.as_str(), self.port),
                        Some(self.connect_timeout),
                        &self.hello,
                        Some(tls),
                        None,
                    ),
                )
                .await?
            }
            SmtpTls::None | SmtpTls::Starttls => {
                let stream = tokio::time::timeout(
                    self.connect_timeout,
                    TcpStream::connect((self.host.as_str(), self.port)),
                )
                .await
                .map_err(|_| {
                    ConnectError::transient(format!(
                        "connecting to {}:{}: timed out after {}s",
                        self.host,
                        self.port,
                        self.connect_timeout.as_secs()
                    ))
                })?
                .map_err(|e| {
                    ConnectError::transient(format!(
                        "connecting to {}:{}: {e}",
                        self.host, self.port
                    ))
                })?;
                let _ = stream.set_nodelay(true);
                let mut conn = self
                    .stage(
                        "greeting and EHLO",
                        AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello),
                    )
                    .await?;
                if self.tls == SmtpTls::Starttls {
                    if !conn.server_info().supports_feature(Extension::StartTls) {
                        return Err(ConnectError::permanent(format!(
                            "{}:{} does not offer STARTTLS; with smtp.tls = \"starttls\" herald never \
                             falls back to plain text (use smtp.tls = \"tls\" for a relay with implicit TLS)",
                            self.host, self.port
                        )));
                    }
                    let tls = self.tls_parameters()?;
                    self.stage("STARTTLS", conn.starttls(tls, &self.hello))
                        .await?;
                }
                conn
            }
        };
        // lettre's EHLO parser keeps only the extensions it uses and drops
        // PIPELINING; ask again (before AUTH: after it, a second EHLO may
        // reset the session) and read the keywords ourselves. A server that
        // refuses the second EHLO keeps the session as it was: no
        // pipelining, one command at a time.
        let pipelining = self.pipelining && {
            let ehlo = async {
                match conn.command(Ehlo::new(self.hello.clone())).await {
                    Ok(reply) => Ok(advertises(&reply, "PIPELINING")),
                    Err(e) if !closing(&e) => Ok(false),
                    Err(e) => Err(e),
                }
            };
            self.stage("EHLO", ehlo).await?
        };
        if let Some((user, password)) = &self.credentials {
            use lettre::transport::smtp::authentication::{Credentials, Mechanism};
            use secrecy::ExposeSecret;
            if !conn.is_encrypted() && !self.allow_plaintext_auth {
                return Err(ConnectError::permanent(format!(
                    "refusing to send the credentials for {user} to {}:{} over an unencrypted \
                     connection; set smtp.tls to \"starttls\" or \"tls\" (smtp.allow_plaintext_auth \
                     = true is accepted for a loopback relay only)",
                    self.host, self.port
                )));
            }
            let creds = Credentials::new(user.clone(), password.expose_secret().to_string());
            let what = format!("AUTH as {user}");
            if conn
                .server_info()
                .get_auth_mechanism(&[Mechanism::Plain, Mechanism::Login])
                .is_none()
            {
                return Err(ConnectError::permanent(format!(
                    "{what} with {}:{}: the server offers neither AUTH PLAIN nor AUTH LOGIN{}",
                    self.host,
                    self.port,
                    if conn.is_encrypted() {
                        ""
                    } else {
                        " on this connection (many servers offer AUTH only after STARTTLS)"
                    }
                )));
            }
            self.stage(
                &what,
                conn.auth(&[Mechanism::Plain, Mechanism::Login], &creds),
            )
            .await?;
        }
        Ok(Connection::Smtp(Box::new(SmtpConnection {
            conn,
            timeout: self.send_timeout,
            carried: 0,
            pipelining,
        })))
    }
}

/// Does an EHLO reply list `keyword` (first word of one of its lines after
/// the greeting)?
fn advertises(reply: &Response, keyword: &str) -> bool {
    reply.message().skip(1).any(|line| {
        line.split_ascii_whitespace()
            .next()
            .is_some_and(|word| word.eq_ignore_ascii_case(keyword))
    })
}

/// The server is closing the connection or it is gone: no status (network
/// or protocol failure) or 421.
fn closing(err: &SmtpError) -> bool {
    err.status().map_or(true, |code| u16::from(code) == 421)
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
        self.send_tracked(message, file_stem, &AtomicBool::new(false))
            .await
    }

    /// Like [`Connection::send`], setting `body_started` once the message
    /// content starts going out (from then on, an abandoned send may have
    /// been delivered).
    pub async fn send_tracked(
        &mut self,
        message: &OutgoingMessage,
        file_stem: &str,
        body_started: &AtomicBool,
    ) -> SendResult {
        match self {
            Connection::Outbox(dir) => {
                body_started.store(true, Ordering::Release);
                write_outbox(dir, message, file_stem).await
            }
            Connection::Smtp(smtp) => {
                let result = smtp_send(smtp, message, body_started).await;
                smtp.carried += 1;
                result
            }
        }
    }

    /// Say goodbye politely (best effort, bounded).
    pub async fn close(self) {
        if let Connection::Smtp(mut smtp) = self {
            let _ = tokio::time::timeout(Duration::from_secs(2), smtp.conn.quit()).await;
        }
    }
}

async fn smtp_send(
    smtp: &mut SmtpConnection,
    message: &OutgoingMessage,
    body_started: &AtomicBool,
) -> SendResult {
    let timeout = smtp.timeout;
    let reused = smtp.carried > 0;
    let envelope = message.envelope();
    let conn = &mut smtp.conn;
    let accepted = if smtp.pipelining {
        pipelined_envelope(conn, envelope, timeout, reused).await
    } else {
        stepwise_envelope(conn, envelope, timeout, reused).await
    };
    if let Err(result) = accepted {
        return result;
    }
    body_started.store(true, Ordering::Release);
    let payload = async {
        match message.data() {
            Some(data) => conn.command(Verbatim(data)).await,
            None => {
                let bytes = message.formatted();
                match std::str::from_utf8(bytes) {
                    Ok(text) => conn.command(DataPayload(text)).await,
                    Err(_) => conn.message(bytes).await,
                }
            }
        }
    };
    match tokio::time::timeout(timeout, payload).await {
        Err(_) => SendResult::Lost {
            stage: Stage::Body,
            detail: no_reply("the message", timeout),
        },
        Ok(Err(e)) => rejected_or_lost(e, Stage::Body),
        Ok(Ok(response)) => SendResult::Accepted {
            code: u16::from(response.code()),
            reply: response.message().collect::<Vec<_>>().join(" "),
        },
    }
}

fn no_reply(what: &str, timeout: Duration) -> String {
    format!("no reply to {what} within {}s", timeout.as_secs())
}

/// The envelope stage timed out waiting for `what`'s reply.
fn no_envelope_reply(what: &str, timeout: Duration) -> SendResult {
    SendResult::Lost {
        stage: Stage::Envelope,
        detail: no_reply(what, timeout),
    }
}

/// MAIL FROM failed. On a reused connection a lost connection or a 421
/// means the server closed it while idle: nothing was handed over, and the
/// recipient has nothing to do with it.
fn mail_failed(err: SmtpError, reused: bool) -> SendResult {
    match rejected_or_lost(err, Stage::Envelope) {
        SendResult::Lost { detail, .. } if reused => SendResult::Stale { detail },
        SendResult::Rejected {
            code: 421, reply, ..
        } if reused => SendResult::Stale {
            detail: format!("421 {reply}"),
        },
        other => other,
    }
}

/// MAIL, each RCPT and DATA, one round trip each. `Err` carries the
/// outcome when the envelope was not accepted.
async fn stepwise_envelope(
    conn: &mut AsyncSmtpConnection,
    envelope: &lettre::address::Envelope,
    timeout: Duration,
    reused: bool,
) -> Result<(), SendResult> {
    let mail = conn.command(Mail::new(envelope.from().cloned(), vec![]));
    match tokio::time::timeout(timeout, mail).await {
        Err(_) => Err(no_envelope_reply("MAIL FROM", timeout)),
        Ok(Err(e)) => Err(reset_after(conn, timeout, mail_failed(e, reused)).await),
        Ok(Ok(_)) => {
            let rest = async {
                for to in envelope.to() {
                    conn.command(Rcpt::new(to.clone(), vec![])).await?;
                }
                conn.command(Data).await
            };
            match tokio::time::timeout(timeout, rest).await {
                Err(_) => Err(no_envelope_reply("RCPT TO or DATA", timeout)),
                Ok(Err(e)) => {
                    Err(reset_after(conn, timeout, rejected_or_lost(e, Stage::Envelope)).await)
                }
                Ok(Ok(_)) => Ok(()),
            }
        }
    }
}

/// MAIL, every RCPT and DATA in one write (RFC 2920), then their replies
/// in order. Every reply due is read before the connection carries
/// anything else; a refusal leaves it usable only if the server is back at
/// the start of a transaction (no 354 to DATA, not closing) and RSET works.
async fn pipelined_envelope(
    conn: &mut AsyncSmtpConnection,
    envelope: &lettre::address::Envelope,
    timeout: Duration,
    reused: bool,
) -> Result<(), SendResult> {
    use std::fmt::Write;
    let mut group = String::with_capacity(64 * (envelope.to().len() + 2));
    let _ = write!(group, "{}", Mail::new(envelope.from().cloned(), vec![]));
    for to in envelope.to() {
        let _ = write!(group, "{}", Rcpt::new(to.clone(), vec![]));
    }
    let _ = write!(group, "{Data}");
    // Replies still due after MAIL's: one per RCPT, then DATA's.
    let due = envelope.to().len() + 1;
    // The write and MAIL's reply.
    match tokio::time::timeout(timeout, conn.command(Verbatim(&group))).await {
        Err(_) => return Err(no_envelope_reply("MAIL FROM", timeout)),
        Ok(Err(e)) => {
            let result = mail_failed(e, reused);
            let in_step = result.connection_usable() && drain_refused(conn, due, timeout).await;
            return Err(reset_after(conn, timeout, usable_only_if(result, in_step)).await);
        }
        Ok(Ok(_)) => {}
    }
    // RCPT and DATA replies, under one bound as in the stepwise exchange.
    let replies = async {
        let mut refused: Option<SmtpError> = None;
        for _ in 0..due - 1 {
            match conn.read_response().await {
                Ok(_) => {}
                Err(e) if closing(&e) => return Err((e, false)),
                Err(e) => refused = refused.or(Some(e)),
            }
        }
        match (conn.read_response().await, refused) {
            (Ok(_), None) => Ok(()),
            // DATA was accepted although a recipient was refused: the
            // server waits for content; only dropping the connection
            // abandons the transaction without sending anything.
            (Ok(_), Some(e)) => Err((e, false)),
            (Err(e), _) if closing(&e) => Err((e, false)),
            (Err(e), refused) => Err((refused.unwrap_or(e), true)),
        }
    };
    match tokio::time::timeout(timeout, replies).await {
        Err(_) => Err(no_envelope_reply("RCPT TO or DATA", timeout)),
        Ok(Err((e, in_step))) => {
            let result = rejected_or_lost(e, Stage::Envelope);
            Err(reset_after(conn, timeout, usable_only_if(result, in_step)).await)
        }
        Ok(Ok(())) => Ok(()),
    }
}

/// A refusal after which the connection is out of step with the server
/// (a reply missing or unexpected) cannot carry another message.
fn usable_only_if(mut result: SendResult, in_step: bool) -> SendResult {
    if let SendResult::Rejected { reusable, .. } = &mut result {
        *reusable = *reusable && in_step;
    }
    result
}

/// After MAIL FROM was refused in a pipelined group, read the `due`
/// replies still owed (RCPT and DATA, refused in turn). Returns whether the
/// connection is still in step: every reply arrived, none accepted, the
/// server not closing.
async fn drain_refused(conn: &mut AsyncSmtpConnection, due: usize, timeout: Duration) -> bool {
    let drain = async {
        for _ in 0..due {
            match conn.read_response().await {
                Err(e) if !closing(&e) => {}
                _ => return false,
            }
        }
        true
    };
    tokio::time::timeout(timeout, drain).await.unwrap_or(false)
}

/// After a rejection in the envelope, reset the transaction (bounded) so
/// the connection can carry the next message; if that fails, the
/// connection is done.
async fn reset_after(
    conn: &mut AsyncSmtpConnection,
    timeout: Duration,
    mut result: SendResult,
) -> SendResult {
    if let SendResult::Rejected { reusable, .. } = &mut result {
        if *reusable {
            *reusable = matches!(
                tokio::time::timeout(timeout, conn.command(Rset)).await,
                Ok(Ok(_))
            );
        }
    }
    result
}

/// DATA content ready as it is (dot-stuffed and terminated), written in one
/// piece: `command` formats it into a buffer sized once.
struct Verbatim<'a>(&'a str);

impl std::fmt::Display for Verbatim<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// The message content of a DATA transaction, dot-stuffed and terminated by
/// `CRLF . CRLF`. lettre's own codec (`message`) pushes byte by byte and
/// took a quarter of the sending CPU; `command` writes any `Display` as one
/// buffer, so the content goes through it instead, stuffed first into a
/// buffer of the right size and written in one piece (several pieces would
/// make `command`'s buffer grow, copying the message each time). (Messages
/// are ASCII: headers are RFC 2047 encoded, bodies quoted-printable.)
struct DataPayload<'a>(&'a str);

impl std::fmt::Display for DataPayload<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = self.0;
        let mut data = String::with_capacity(text.len() + text.len() / 32 + 5);
        super::qp::stuff_into(text, &mut data);
        if !text.ends_with("\r\n") {
            data.push_str("\r\n");
        }
        data.push_str(".\r\n");
        f.write_str(&data)
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
