//! A small, scriptable SMTP server for the tests: speaks the protocol over
//! real TCP on loopback, records every accepted message, and injects faults
//! per recipient (replies at RCPT or after DATA, dropped connections,
//! stalls) or per session (silence at a given stage of every session,
//! closing idle connections, advertising STARTTLS and AUTH). Tests wait on
//! what it saw (messages, bodies, sessions ended), never on the clock, and
//! can hold it before a given message to act while a send is mid-way.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// What to do to a recipient's transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Reply with this line to RCPT TO (e.g. "450 4.2.0 mailbox busy").
    AtRcpt(String),
    /// Accept the envelope, then reply with this line after the data.
    AfterData(String),
    /// Close the connection after receiving the data, without a reply.
    DropAfterData,
    /// Receive the data, then never answer.
    StallAfterData,
    /// Never answer the RCPT command.
    StallAtRcpt,
}

/// A stage at which every session goes silent (reads on, never answers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Silence {
    /// No greeting after the TCP connection is accepted (for an implicit
    /// TLS client: no answer to its handshake).
    Greeting,
    Ehlo,
    /// No reply to STARTTLS.
    Starttls,
    /// "220 ready" to STARTTLS, then no answer to the TLS handshake.
    TlsHandshake,
    Auth,
    Mail,
    /// No reply to DATA.
    Data,
    /// The body is received, then no reply.
    Body,
    Rset,
    Quit,
}

/// Session-wide behaviour of the server.
#[derive(Debug, Clone, Default)]
pub struct Script {
    pub silence: Option<Silence>,
    /// Advertise STARTTLS (needed for the STARTTLS stages).
    pub offer_starttls: bool,
    /// Advertise AUTH PLAIN LOGIN and accept any credentials.
    pub offer_auth: bool,
    /// Close a connection (without a word) after this long with no command.
    pub close_idle_after: Option<Duration>,
    /// Do not advertise PIPELINING (RFC 2920): the client must wait for
    /// each reply before the next command.
    pub no_pipelining: bool,
    /// Refuse this many MAIL FROM commands (the first ones, across
    /// sessions) with "451 4.3.0 try again later".
    pub refuse_mail: usize,
}

#[derive(Debug, Clone)]
struct Rule {
    fault: Fault,
    /// How many transactions it applies to (then the recipient is accepted).
    remaining: usize,
}

/// One accepted message.
#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
    /// When its MAIL FROM arrived: the moment the sender's rate limiter
    /// let it go, give or take one round trip (read by the timing tests).
    #[allow(dead_code)]
    pub at: Instant,
}

#[derive(Default)]
struct State {
    rules: HashMap<String, Rule>,
    received: Vec<Received>,
    connections: usize,
    /// Sessions that have ended (the client hung up, or the server did).
    closed: usize,
    /// Message bodies received in full (whatever the reply).
    bodies: usize,
    /// While set, the MAIL FROM of message number `n + 1` and later is not
    /// answered until [`SmtpServer::release`].
    hold_after: Option<usize>,
    script: Script,
    /// Commands seen, by verb (EHLO, STARTTLS, AUTH, MAIL, ...).
    commands: HashMap<String, usize>,
    /// MAIL FROM commands that arrived with more commands already behind
    /// them (sent as a pipelined group, not one at a time).
    pipelined: usize,
    /// MAIL FROM commands refused so far (see [`Script::refuse_mail`]).
    mail_refused: usize,
}

/// A running server; stops when dropped.
pub struct SmtpServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    _runtime: tokio::runtime::Runtime,
}

impl SmtpServer {
    pub fn start() -> SmtpServer {
        Self::start_on("127.0.0.1:0")
    }

    /// Start on a given address (to bring a server up on a port a run was
    /// already configured with).
    pub fn start_on(addr: &str) -> SmtpServer {
        Self::start_scripted_on(addr, Script::default())
    }

    /// Start on a free loopback port with session-wide behaviour.
    pub fn start_scripted(script: Script) -> SmtpServer {
        Self::start_scripted_on("127.0.0.1:0", script)
    }

    fn start_scripted_on(addr: &str, script: Script) -> SmtpServer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(TcpListener::bind(addr))
            .expect("bind SMTP test server");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            script,
            ..State::default()
        }));
        let st = state.clone();
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    break;
                };
                st.lock().unwrap().connections += 1;
                let st = st.clone();
                tokio::spawn(async move {
                    let _ = session(stream, st.clone()).await;
                    st.lock().unwrap().closed += 1;
                });
            }
        });
        SmtpServer {
            addr,
            state,
            _runtime: runtime,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Apply `fault` to the next `times` transactions for `rcpt`.
    pub fn fault(&self, rcpt: &str, fault: Fault, times: usize) {
        self.state.lock().unwrap().rules.insert(
            rcpt.to_ascii_lowercase(),
            Rule {
                fault,
                remaining: times,
            },
        );
    }

    /// Wait (polling) until at least `n` messages have arrived, or
    /// `within` has passed; returns how many have arrived.
    pub fn wait_for(&self, n: usize, within: Duration) -> usize {
        self.wait_until(within, |st| st.received.len() >= n);
        self.state.lock().unwrap().received.len()
    }

    /// Wait (polling) until `seen` holds or `within` has passed; returns
    /// whether it holds.
    fn wait_until(&self, within: Duration, seen: impl Fn(&State) -> bool) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if seen(&self.state.lock().unwrap()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Wait until `n` message bodies have been received in full (answered
    /// or not); returns whether they were within `within`.
    pub fn wait_for_bodies(&self, n: usize, within: Duration) -> bool {
        self.wait_until(within, |st| st.bodies >= n)
    }

    /// Wait until every session so far has ended: after its client process
    /// exited, nothing more can arrive. Returns whether they did within
    /// `within`.
    pub fn wait_closed(&self, within: Duration) -> bool {
        self.wait_until(within, |st| st.closed >= st.connections)
    }

    /// Once `n` messages are in, answer no further MAIL FROM until
    /// [`SmtpServer::release`]: the sender stays mid-way for the test.
    pub fn hold_after(&self, n: usize) {
        self.state.lock().unwrap().hold_after = Some(n);
    }

    /// Let held and later messages through.
    pub fn release(&self) {
        self.state.lock().unwrap().hold_after = None;
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    /// Messages received per recipient address.
    pub fn counts(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for r in self.received() {
            for to in r.to {
                *counts.entry(to).or_insert(0) += 1;
            }
        }
        counts
    }

    pub fn connections(&self) -> usize {
        self.state.lock().unwrap().connections
    }

    /// How many MAIL FROM commands arrived as part of a pipelined group
    /// (RCPT and DATA already received behind them).
    pub fn pipelined(&self) -> usize {
        self.state.lock().unwrap().pipelined
    }

    /// How many times a command verb (e.g. "MAIL", "AUTH") arrived.
    pub fn commands(&self, verb: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .commands
            .get(verb)
            .copied()
            .unwrap_or(0)
    }
}

/// Stay silent (keep the connection open) for longer than any test runs.
async fn go_silent() -> std::io::Result<()> {
    tokio::time::sleep(Duration::from_secs(3600)).await;
    Ok(())
}

fn take_fault(state: &Mutex<State>, rcpt: &str) -> Option<Fault> {
    let mut st = state.lock().unwrap();
    let rule = st.rules.get_mut(&rcpt.to_ascii_lowercase())?;
    if rule.remaining == 0 {
        return None;
    }
    rule.remaining -= 1;
    Some(rule.fault.clone())
}

fn address(arg: &str) -> String {
    let start = arg.find('<').map_or(0, |i| i + 1);
    let end = arg[start..].find('>').map_or(arg.len(), |i| start + i);
    arg[start..end].to_string()
}

async fn session(stream: TcpStream, state: Arc<Mutex<State>>) -> std::io::Result<()> {
    // Each reply goes out at once. With Nagle's algorithm on, the replies to
    // a pipelined group (written one by one, not buffered as RFC 2920
    // asks of a server) would wait for the client's delayed ACK.
    stream.set_nodelay(true)?;
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let script = state.lock().unwrap().script.clone();
    let silent_at = |s: Silence| script.silence == Some(s);
    if silent_at(Silence::Greeting) {
        return go_silent().await;
    }
    write.write_all(b"220 herald-test ESMTP ready\r\n").await?;
    let mut from = String::new();
    // A transaction is open (MAIL FROM accepted).
    let mut in_mail = false;
    let mut to: Vec<String> = Vec::new();
    let mut data_fault: Option<Fault> = None;
    let mut mail_at = Instant::now();
    let mut line = String::new();
    loop {
        line.clear();
        let read = match script.close_idle_after {
            Some(idle) => match tokio::time::timeout(idle, lines.read_line(&mut line)).await {
                Ok(r) => r?,
                // Idle too long: hang up without a word.
                Err(_) => return Ok(()),
            },
            None => lines.read_line(&mut line).await?,
        };
        if read == 0 {
            return Ok(());
        }
        let cmd = line.trim_end();
        let upper = cmd.to_ascii_uppercase();
        let verb = upper.split([' ', ':']).next().unwrap_or("").to_string();
        *state
            .lock()
            .unwrap()
            .commands
            .entry(verb.clone())
            .or_insert(0) += 1;
        let silence = match verb.as_str() {
            "EHLO" => Some(Silence::Ehlo),
            "STARTTLS" => Some(Silence::Starttls),
            "AUTH" => Some(Silence::Auth),
            "MAIL" => Some(Silence::Mail),
            "DATA" => Some(Silence::Data),
            "RSET" => Some(Silence::Rset),
            "QUIT" => Some(Silence::Quit),
            _ => None,
        };
        if silence.is_some_and(silent_at) {
            return go_silent().await;
        }
        if upper.starts_with("EHLO") {
            let mut reply = String::from("250-herald-test\r\n250-8BITMIME\r\n");
            if script.offer_starttls {
                reply.push_str("250-STARTTLS\r\n");
            }
            if script.offer_auth {
                reply.push_str("250-AUTH PLAIN LOGIN\r\n");
            }
            if !script.no_pipelining {
                reply.push_str("250-PIPELINING\r\n");
            }
            reply.push_str("250 SIZE 52428800\r\n");
            write.write_all(reply.as_bytes()).await?;
        } else if verb == "STARTTLS" {
            write.write_all(b"220 2.0.0 Ready to start TLS\r\n").await?;
            // This server speaks no TLS: the handshake goes unanswered.
            return go_silent().await;
        } else if verb == "AUTH" {
            if upper.starts_with("AUTH PLAIN ") {
                write
                    .write_all(b"235 2.7.0 Authentication successful\r\n")
                    .await?;
            } else if upper.starts_with("AUTH LOGIN") {
                for prompt in ["334 VXNlcm5hbWU6\r\n", "334 UGFzc3dvcmQ6\r\n"] {
                    write.write_all(prompt.as_bytes()).await?;
                    line.clear();
                    if lines.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                }
                write
                    .write_all(b"235 2.7.0 Authentication successful\r\n")
                    .await?;
            } else {
                write.write_all(b"334 \r\n").await?;
                line.clear();
                if lines.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                write
                    .write_all(b"235 2.7.0 Authentication successful\r\n")
                    .await?;
            }
        } else if upper.starts_with("HELO") {
            write.write_all(b"250 herald-test\r\n").await?;
        } else if upper.starts_with("MAIL FROM:") {
            loop {
                let held = {
                    let st = state.lock().unwrap();
                    st.hold_after.is_some_and(|n| st.received.len() >= n)
                };
                if !held {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            mail_at = Instant::now();
            to.clear();
            data_fault = None;
            let refuse = {
                let mut st = state.lock().unwrap();
                if !lines.buffer().is_empty() {
                    st.pipelined += 1;
                }
                let refuse = st.mail_refused < script.refuse_mail;
                st.mail_refused += usize::from(refuse);
                refuse
            };
            if refuse {
                write.write_all(b"451 4.3.0 try again later\r\n").await?;
                continue;
            }
            from = address(&cmd[10..]);
            in_mail = true;
            write.write_all(b"250 2.1.0 Ok\r\n").await?;
        } else if upper.starts_with("RCPT TO:") && !in_mail {
            write
                .write_all(b"503 5.5.1 Error: need MAIL command\r\n")
                .await?;
        } else if upper.starts_with("RCPT TO:") {
            let rcpt = address(&cmd[8..]);
            match take_fault(&state, &rcpt) {
                Some(Fault::AtRcpt(reply)) => {
                    write.write_all(format!("{reply}\r\n").as_bytes()).await?;
                    if reply.starts_with("421") {
                        return Ok(());
                    }
                }
                Some(Fault::StallAtRcpt) => {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    return Ok(());
                }
                Some(other) => {
                    data_fault = Some(other);
                    to.push(rcpt);
                    write.write_all(b"250 2.1.5 Ok\r\n").await?;
                }
                None => {
                    to.push(rcpt);
                    write.write_all(b"250 2.1.5 Ok\r\n").await?;
                }
            }
        } else if upper == "DATA" {
            if !in_mail {
                write
                    .write_all(b"503 5.5.1 Error: need RCPT command\r\n")
                    .await?;
                continue;
            }
            if to.is_empty() {
                write
                    .write_all(b"554 5.5.1 Error: no valid recipients\r\n")
                    .await?;
                continue;
            }
            write
                .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                .await?;
            let mut data = String::new();
            loop {
                line.clear();
                if lines.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" || line == ".\n" {
                    break;
                }
                let unstuffed = line
                    .strip_prefix('.')
                    .filter(|_| line.starts_with(".."))
                    .unwrap_or(&line);
                data.push_str(unstuffed);
            }
            state.lock().unwrap().bodies += 1;
            if silent_at(Silence::Body) {
                return go_silent().await;
            }
            match data_fault.take() {
                Some(Fault::AfterData(reply)) => {
                    write.write_all(format!("{reply}\r\n").as_bytes()).await?;
                    if reply.starts_with("421") {
                        return Ok(());
                    }
                }
                Some(Fault::DropAfterData) => return Ok(()),
                Some(Fault::StallAfterData) => {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    return Ok(());
                }
                _ => {
                    let n = {
                        let mut st = state.lock().unwrap();
                        st.received.push(Received {
                            from: from.clone(),
                            to: to.clone(),
                            data,
                            at: mail_at,
                        });
                        st.received.len()
                    };
                    write
                        .write_all(format!("250 2.0.0 Ok: queued as Q{n:06}\r\n").as_bytes())
                        .await?;
                }
            }
            to.clear();
            in_mail = false;
        } else if upper == "RSET" {
            to.clear();
            in_mail = false;
            data_fault = None;
            write.write_all(b"250 2.0.0 Ok\r\n").await?;
        } else if upper == "NOOP" {
            write.write_all(b"250 2.0.0 Ok\r\n").await?;
        } else if upper == "QUIT" {
            write.write_all(b"221 2.0.0 Bye\r\n").await?;
            return Ok(());
        } else {
            write
                .write_all(b"502 5.5.2 Error: command not recognized\r\n")
                .await?;
        }
    }
}
