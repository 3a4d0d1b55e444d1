//! Authenticated, encrypted streams between nodes: [`Transport`] (the seam, so another
//! transport can be added) and [`NoiseTcp`], Noise `XX_25519_AESGCM_SHA256` over TCP.
//!
//! Each side's handshake payload is its ledger account key (ed25519) and its signature over
//! its Noise static key, so a Noise session is bound to an account. The prologue holds the
//! chain's genesis hash and the wire version: nodes of another chain or version fail the
//! handshake. A dialer names the account it expects (the metagraph's key for the uid it
//! dials) and refuses any other.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::NodeError;

/// The Noise protocol every node speaks.
pub const NOISE_PARAMS: &str = "Noise_XX_25519_AESGCM_SHA256";
/// Bytes of the largest Noise message.
const MAX_NOISE: usize = 65_535;
/// Domain separation of the signature over the Noise static key.
const BINDING: &[u8] = b"deepnode noise static key v1";

/// A ledger account key: the ed25519 public key that signs the node's extrinsics.
pub type AccountKey = [u8; 32];

/// Boxed future of the transport traits.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The receiving half of a session: whole plaintext messages, in order.
pub trait FrameRead: Send {
    /// The next message, written into `buf` (replaced). `Ok(false)` on a clean end of stream.
    fn recv<'a>(&'a mut self, buf: &'a mut Vec<u8>) -> BoxFuture<'a, Result<bool, NodeError>>;
}

/// The sending half of a session.
pub trait FrameWrite: Send {
    /// Sends one message of at most [`deepnode_wire::MAX_PLAINTEXT`] bytes.
    fn send<'a>(&'a mut self, msg: &'a [u8]) -> BoxFuture<'a, Result<(), NodeError>>;
}

/// An established session: its two halves and the peer's account.
pub struct Session {
    /// Messages from the peer.
    pub reader: Box<dyn FrameRead>,
    /// Messages to the peer.
    pub writer: Box<dyn FrameWrite>,
    /// The account the peer proved it holds.
    pub peer: AccountKey,
}

/// How nodes reach each other.
pub trait Transport: Send + Sync + 'static {
    /// Connects to `addr` and authenticates it as `expected`.
    fn dial(
        &self,
        addr: SocketAddr,
        expected: AccountKey,
    ) -> BoxFuture<'_, Result<Session, NodeError>>;
    /// Completes the handshake of an accepted connection; the caller decides on the account.
    fn accept(&self, stream: TcpStream) -> BoxFuture<'_, Result<Session, NodeError>>;
}

/// Noise XX over TCP, each Noise message behind a 2-byte big-endian length.
pub struct NoiseTcp {
    key: SigningKey,
    noise_private: Vec<u8>,
    noise_public: Vec<u8>,
    prologue: Vec<u8>,
    handshake_timeout: Duration,
}

impl NoiseTcp {
    /// A transport for the account of `key` on the chain whose genesis hash is `genesis`.
    /// A fresh Noise static key is made for each transport. Handshakes that take longer than
    /// `handshake_timeout` (a half-open or silent peer) fail with [`NodeError::Timeout`].
    pub fn new(
        key: SigningKey,
        genesis: [u8; 32],
        handshake_timeout: Duration,
    ) -> Result<NoiseTcp, NodeError> {
        let keypair = builder()?.generate_keypair().map_err(NodeError::noise)?;
        let mut prologue = b"deepnode".to_vec();
        prologue.extend_from_slice(&genesis);
        prologue.extend_from_slice(&deepnode_wire::VERSION.to_le_bytes());
        Ok(NoiseTcp {
            key,
            noise_private: keypair.private,
            noise_public: keypair.public,
            prologue,
            handshake_timeout,
        })
    }

    /// This node's account.
    pub fn account(&self) -> AccountKey {
        self.key.verifying_key().to_bytes()
    }

    /// Account key and its signature over this transport's Noise static key.
    fn payload(&self) -> Vec<u8> {
        let mut msg = BINDING.to_vec();
        msg.extend_from_slice(&self.noise_public);
        let mut p = self.key.verifying_key().to_bytes().to_vec();
        p.extend_from_slice(&self.key.sign(&msg).to_bytes());
        p
    }

    async fn handshake(
        &self,
        stream: TcpStream,
        initiator: bool,
        expected: Option<AccountKey>,
    ) -> Result<Session, NodeError> {
        stream.set_nodelay(true)?;
        let b = builder()?
            .local_private_key(&self.noise_private)
            .and_then(|b| b.prologue(&self.prologue))
            .map_err(NodeError::noise)?;
        let mut hs = if initiator {
            b.build_initiator()
        } else {
            b.build_responder()
        }
        .map_err(NodeError::noise)?;
        let (mut rd, mut wr) = stream.into_split();
        let mut msg = vec![0u8; MAX_NOISE];
        let mut payload = vec![0u8; MAX_NOISE];
        let mut frame = Vec::new();
        let mine = self.payload();
        let mut theirs = None;
        // XX: -> e; <- e, ee, s, es (+ payload); -> s, se (+ payload).
        for step in 0..3 {
            let we_write = (step % 2 == 0) == initiator;
            if we_write {
                let body: &[u8] = if step == 0 { &[] } else { &mine };
                let n = hs.write_message(body, &mut msg).map_err(NodeError::noise)?;
                write_frame(&mut wr, msg.get(..n).unwrap_or_default()).await?;
            } else {
                if !read_frame(&mut rd, &mut frame).await? {
                    return Err(NodeError::Handshake(
                        "the peer closed the connection".into(),
                    ));
                }
                let n = hs
                    .read_message(&frame, &mut payload)
                    .map_err(NodeError::noise)?;
                if step > 0 {
                    theirs = Some(payload.get(..n).unwrap_or_default().to_vec());
                }
            }
        }
        let remote_static = hs
            .get_remote_static()
            .ok_or_else(|| NodeError::Handshake("no remote static key".into()))?
            .to_vec();
        let peer = verify_binding(theirs.as_deref().unwrap_or_default(), &remote_static)?;
        if let Some(want) = expected {
            if want != peer {
                return Err(NodeError::WrongPeer);
            }
        }
        let state = Arc::new(
            hs.into_stateless_transport_mode()
                .map_err(NodeError::noise)?,
        );
        Ok(Session {
            reader: Box::new(NoiseReader {
                rd,
                state: Arc::clone(&state),
                nonce: 0,
                frame: Vec::new(),
            }),
            writer: Box::new(NoiseWriter {
                wr,
                state,
                nonce: 0,
                buf: vec![0u8; MAX_NOISE + 2],
            }),
            peer,
        })
    }
}

impl Transport for NoiseTcp {
    fn dial(
        &self,
        addr: SocketAddr,
        expected: AccountKey,
    ) -> BoxFuture<'_, Result<Session, NodeError>> {
        Box::pin(async move {
            let fut = async {
                let stream = TcpStream::connect(addr).await?;
                self.handshake(stream, true, Some(expected)).await
            };
            tokio::time::timeout(self.handshake_timeout, fut)
                .await
                .map_err(|_| NodeError::Timeout)?
        })
    }

    fn accept(&self, stream: TcpStream) -> BoxFuture<'_, Result<Session, NodeError>> {
        Box::pin(async move {
            tokio::time::timeout(self.handshake_timeout, self.handshake(stream, false, None))
                .await
                .map_err(|_| NodeError::Timeout)?
        })
    }
}

fn builder() -> Result<snow::Builder<'static>, NodeError> {
    let params: snow::params::NoiseParams = NOISE_PARAMS.parse().map_err(NodeError::noise)?;
    Ok(snow::Builder::new(params))
}

/// Checks a handshake payload (account key, signature over the Noise static key); returns
/// the account.
fn verify_binding(payload: &[u8], remote_static: &[u8]) -> Result<AccountKey, NodeError> {
    let bad = |why: &str| NodeError::Handshake(format!("identity payload: {why}"));
    let (key, sig) = payload
        .split_first_chunk::<32>()
        .ok_or_else(|| bad("too short"))?;
    let sig: &[u8; 64] = sig.try_into().map_err(|_| bad("wrong length"))?;
    let vk = VerifyingKey::from_bytes(key).map_err(|_| bad("not an ed25519 key"))?;
    let mut msg = BINDING.to_vec();
    msg.extend_from_slice(remote_static);
    vk.verify_strict(&msg, &Signature::from_bytes(sig))
        .map_err(|_| bad("signature does not bind the Noise key"))?;
    Ok(*key)
}

async fn write_frame(wr: &mut OwnedWriteHalf, body: &[u8]) -> Result<(), NodeError> {
    let len =
        u16::try_from(body.len()).map_err(|_| NodeError::Protocol("frame too long".into()))?;
    let mut buf = Vec::with_capacity(body.len().saturating_add(2));
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(body);
    wr.write_all(&buf).await?;
    Ok(())
}

/// Reads one length-prefixed frame into `buf`; `Ok(false)` on a clean end of stream.
async fn read_frame(rd: &mut OwnedReadHalf, buf: &mut Vec<u8>) -> Result<bool, NodeError> {
    let mut len = [0u8; 2];
    match rd.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    buf.resize(usize::from(u16::from_be_bytes(len)), 0);
    rd.read_exact(buf).await?;
    Ok(true)
}

struct NoiseReader {
    rd: OwnedReadHalf,
    state: Arc<snow::StatelessTransportState>,
    nonce: u64,
    frame: Vec<u8>,
}

impl FrameRead for NoiseReader {
    fn recv<'a>(&'a mut self, buf: &'a mut Vec<u8>) -> BoxFuture<'a, Result<bool, NodeError>> {
        Box::pin(async move {
            if !read_frame(&mut self.rd, &mut self.frame).await? {
                return Ok(false);
            }
            buf.resize(self.frame.len(), 0);
            // Nonces count up from 0 on each side: a replayed, dropped or reordered frame
            // fails authentication and ends the session.
            let n = self
                .state
                .read_message(self.nonce, &self.frame, buf)
                .map_err(|_| {
                    NodeError::Protocol("a frame failed authentication (replayed or forged)".into())
                })?;
            self.nonce = self.nonce.wrapping_add(1);
            buf.truncate(n);
            Ok(true)
        })
    }
}

struct NoiseWriter {
    wr: OwnedWriteHalf,
    state: Arc<snow::StatelessTransportState>,
    nonce: u64,
    buf: Vec<u8>,
}

impl FrameWrite for NoiseWriter {
    fn send<'a>(&'a mut self, msg: &'a [u8]) -> BoxFuture<'a, Result<(), NodeError>> {
        Box::pin(async move {
            let (len, body) = self.buf.split_at_mut(2);
            let n = self
                .state
                .write_message(self.nonce, msg, body)
                .map_err(NodeError::noise)?;
            self.nonce = self.nonce.wrapping_add(1);
            let n16 = u16::try_from(n).map_err(|_| NodeError::Protocol("frame too long".into()))?;
            len.copy_from_slice(&n16.to_be_bytes());
            self.wr
                .write_all(self.buf.get(..n.saturating_add(2)).unwrap_or_default())
                .await?;
            Ok(())
        })
    }
}
