//! Authenticated, encrypted streams between nodes: [`Transport`] (the seam, so another
//! transport can be added) and [`NoiseTcp`], Noise `XX_25519_AESGCM_SHA256` over TCP.
//!
//! Each side's handshake payload is its ledger account key (ed25519) and its signature over
//! its Noise static key, so a Noise session is bound to an account. The prologue holds the
//! chain's genesis hash and the wire version: nodes of another chain or version fail the
//! handshake. A dialer names the account it expects (the metagraph's key for the uid it
//! dials) and refuses any other.

use std::future::Future;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
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
    /// The next message, borrowed from the reader's buffer until the next call; `Ok(None)` on
    /// a clean end of stream. Cancelling the future loses no message.
    fn recv(&mut self) -> BoxFuture<'_, Result<Option<&[u8]>, NodeError>>;
}

/// The sending half of a session. Messages are sealed into a buffer as they are pushed and
/// reach the peer, in order, on the next [`FrameWrite::flush`].
pub trait FrameWrite: Send {
    /// Seals one message, the concatenation of `parts` (at most
    /// [`deepnode_wire::MAX_PLAINTEXT`] bytes in all), into the outgoing buffer.
    fn push(&mut self, parts: &[&[u8]]) -> Result<(), NodeError>;
    /// Bytes pushed and not yet written.
    fn buffered(&self) -> usize;
    /// Writes every pushed message. Cancelling the future loses nothing: a later call goes on
    /// where it stopped.
    fn flush(&mut self) -> BoxFuture<'_, Result<(), NodeError>>;
    /// Seals the message `plaintext` (at most [`deepnode_wire::MAX_PLAINTEXT`] bytes) in place,
    /// overwriting it, and writes it after every pushed message: the copy
    /// [`FrameWrite::push`] makes is saved for a caller that owns the bytes. Cancelling the
    /// future may cut the stream inside a frame: only do it to end the session.
    fn send_in_place<'a>(
        &'a mut self,
        plaintext: &'a mut [u8],
    ) -> BoxFuture<'a, Result<(), NodeError>>;
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
        if let Some(want) = expected
            && want != peer
        {
            return Err(NodeError::WrongPeer);
        }
        if !hs.is_handshake_finished() {
            return Err(NodeError::Handshake("the handshake did not finish".into()));
        }
        // Noise's Split(): the first key encrypts the initiator's messages, the second the
        // responder's (what snow's transport state would use; see the test against it).
        let (k1, k2) = hs.dangerously_get_raw_split();
        let (send, recv) = if initiator { (k1, k2) } else { (k2, k1) };
        Ok(Session {
            reader: Box::new(NoiseReader {
                rd,
                cipher: Cipher::new(&recv)?,
                buf: vec![0u8; READ_BUF].into_boxed_slice(),
                start: 0,
                end: 0,
            }),
            writer: Box::new(NoiseWriter {
                wr,
                cipher: Cipher::new(&send)?,
                buf: Vec::with_capacity(FLUSH_AT + MAX_NOISE + 2),
                written: 0,
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

/// One direction of a Noise transport session with the `AESGCM` cipher functions exactly as
/// the Noise specification (rev. 34, sections 5.1 and 12.4) defines them: AES-256-GCM, the
/// 96-bit nonce is 32 zero bits then the counter `n` big-endian, the associated data of a
/// transport message is empty, the 16-byte tag follows the ciphertext; `n` counts the messages
/// from 0 and 2^64 - 1 is never used. Sealing and opening happen in place (snow's
/// `StatelessTransportState` copies each message once more).
struct Cipher {
    key: LessSafeKey,
    n: u64,
}

impl Cipher {
    fn new(key: &[u8; 32]) -> Result<Cipher, NodeError> {
        let key = UnboundKey::new(&AES_256_GCM, key)
            .map_err(|_| NodeError::Noise("the AES-256-GCM key was refused".into()))?;
        Ok(Cipher {
            key: LessSafeKey::new(key),
            n: 0,
        })
    }

    /// The nonce of the next message; it is never reused: `n` only counts up and the session
    /// ends before the reserved 2^64 - 1.
    fn next_nonce(&mut self) -> Result<Nonce, NodeError> {
        if self.n == u64::MAX {
            return Err(NodeError::Protocol("the session used up its nonces".into()));
        }
        let mut bytes = [0u8; 12];
        bytes[4..].copy_from_slice(&self.n.to_be_bytes());
        self.n += 1;
        Ok(Nonce::assume_unique_for_key(bytes))
    }

    /// Encrypts `frame[..len - TAG_LEN]` in place and writes the tag into the last
    /// [`TAG_LEN`] bytes.
    fn seal(&mut self, frame: &mut [u8]) -> Result<(), NodeError> {
        let split = frame
            .len()
            .checked_sub(TAG_LEN)
            .ok_or_else(|| NodeError::Protocol("frame shorter than a tag".into()))?;
        let (text, tag_out) = frame.split_at_mut(split);
        tag_out.copy_from_slice(&self.seal_separate(text)?);
        Ok(())
    }

    /// Encrypts `text` in place; returns the tag that follows it on the wire.
    fn seal_separate(&mut self, text: &mut [u8]) -> Result<[u8; TAG_LEN], NodeError> {
        let nonce = self.next_nonce()?;
        let tag = self
            .key
            .seal_in_place_separate_tag(nonce, Aad::empty(), text)
            .map_err(|_| NodeError::Protocol("message too long to seal".into()))?;
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Authenticates and decrypts `frame` (ciphertext, then tag) in place; returns the
    /// plaintext. A replayed, dropped, reordered or forged frame fails here, as the counter
    /// moves on only for a frame that authenticates.
    fn open<'a>(&mut self, frame: &'a mut [u8]) -> Result<&'a [u8], NodeError> {
        if self.n == u64::MAX {
            return Err(NodeError::Protocol("the session used up its nonces".into()));
        }
        let mut bytes = [0u8; 12];
        bytes[4..].copy_from_slice(&self.n.to_be_bytes());
        let plain = self
            .key
            .open_in_place(Nonce::assume_unique_for_key(bytes), Aad::empty(), frame)
            .map_err(|_| {
                NodeError::Protocol("a frame failed authentication (replayed or forged)".into())
            })?;
        self.n += 1;
        Ok(plain)
    }
}

/// Bytes of a Noise transport message's tag.
const TAG_LEN: usize = 16;
/// Bytes the reader asks the socket for at once: several full frames.
const READ_BUF: usize = 4 * (MAX_NOISE + 2);
/// The writer writes once this much is sealed (or when it has nothing more to seal).
const FLUSH_AT: usize = 2 * (MAX_NOISE + 2);

struct NoiseReader {
    rd: OwnedReadHalf,
    cipher: Cipher,
    /// Bytes read from the socket; `start..end` are not yet consumed.
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

impl FrameRead for NoiseReader {
    fn recv(&mut self) -> BoxFuture<'_, Result<Option<&[u8]>, NodeError>> {
        Box::pin(async move {
            // The frame's body, once all of it is in the buffer.
            let (from, to) = loop {
                let have = self.end - self.start;
                let need = match self.buf.get(self.start..self.end) {
                    Some([a, b, ..]) => 2 + usize::from(u16::from_be_bytes([*a, *b])),
                    _ => 2,
                };
                if have >= need {
                    let from = self.start + 2;
                    self.start += need;
                    break (from, self.start);
                }
                if self.start == self.end {
                    (self.start, self.end) = (0, 0);
                } else if self.start + need > self.buf.len() {
                    // The frame would run past the buffer: move its beginning to the front
                    // (at most one partial frame, which the buffer always has room for).
                    self.buf.copy_within(self.start..self.end, 0);
                    (self.start, self.end) = (0, have);
                }
                let room = self.buf.get_mut(self.end..).unwrap_or_default();
                let n = self.rd.read(room).await?;
                if n == 0 {
                    return if have == 0 {
                        Ok(None)
                    } else {
                        Err(NodeError::Protocol(
                            "the stream ended inside a frame".into(),
                        ))
                    };
                }
                self.end += n;
            };
            let frame = self.buf.get_mut(from..to).unwrap_or_default();
            self.cipher.open(frame).map(Some)
        })
    }
}

struct NoiseWriter {
    wr: OwnedWriteHalf,
    cipher: Cipher,
    /// Sealed frames, each behind its 2-byte length; `..written` already went out.
    buf: Vec<u8>,
    written: usize,
}

impl FrameWrite for NoiseWriter {
    fn push(&mut self, parts: &[&[u8]]) -> Result<(), NodeError> {
        let len = parts.iter().map(|p| p.len()).sum::<usize>();
        if len > deepnode_wire::MAX_PLAINTEXT {
            return Err(NodeError::Protocol("message longer than a frame".into()));
        }
        let frame = len + TAG_LEN;
        // MAX_PLAINTEXT + TAG_LEN is Noise's 65535: the length fits its two bytes.
        let prefix = u16::try_from(frame).unwrap_or(u16::MAX).to_be_bytes();
        let start = self.buf.len();
        self.buf.extend_from_slice(&prefix);
        for p in parts {
            self.buf.extend_from_slice(p);
        }
        self.buf.resize(start + 2 + frame, 0);
        let sealed = self
            .cipher
            .seal(self.buf.get_mut(start + 2..).unwrap_or_default());
        if sealed.is_err() {
            self.buf.truncate(start);
        }
        sealed
    }

    fn buffered(&self) -> usize {
        self.buf.len() - self.written
    }

    fn flush(&mut self) -> BoxFuture<'_, Result<(), NodeError>> {
        Box::pin(async move {
            while let Some(rest) = self.buf.get(self.written..).filter(|r| !r.is_empty()) {
                let n = self.wr.write(rest).await?;
                if n == 0 {
                    return Err(NodeError::Closed);
                }
                self.written += n;
            }
            self.buf.clear();
            self.written = 0;
            Ok(())
        })
    }

    fn send_in_place<'a>(
        &'a mut self,
        plaintext: &'a mut [u8],
    ) -> BoxFuture<'a, Result<(), NodeError>> {
        Box::pin(async move {
            if plaintext.len() > deepnode_wire::MAX_PLAINTEXT {
                return Err(NodeError::Protocol("message longer than a frame".into()));
            }
            let tag = self.cipher.seal_separate(plaintext)?;
            // At most MAX_PLAINTEXT + TAG_LEN = 65535: the length fits its two bytes.
            let prefix = u16::try_from(plaintext.len() + TAG_LEN)
                .unwrap_or(u16::MAX)
                .to_be_bytes();
            // The pushed frames, then this one, in one vectored write where the socket takes it.
            let pushed = self.buf.get(self.written..).unwrap_or_default();
            let mut slices = [
                IoSlice::new(pushed),
                IoSlice::new(&prefix),
                IoSlice::new(plaintext),
                IoSlice::new(&tag),
            ];
            let mut rest = &mut slices[..];
            IoSlice::advance_slices(&mut rest, 0);
            while !rest.is_empty() {
                let n = self.wr.write_vectored(rest).await?;
                if n == 0 {
                    return Err(NodeError::Closed);
                }
                IoSlice::advance_slices(&mut rest, n);
            }
            self.buf.clear();
            self.written = 0;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs an XX handshake in memory; returns both sides, finished.
    fn handshake() -> (snow::HandshakeState, snow::HandshakeState) {
        let keys = |b: snow::Builder<'static>| b.generate_keypair().unwrap().private;
        let (ki, kr) = (keys(builder().unwrap()), keys(builder().unwrap()));
        let mut i = builder()
            .unwrap()
            .local_private_key(&ki)
            .unwrap()
            .build_initiator()
            .unwrap();
        let mut r = builder()
            .unwrap()
            .local_private_key(&kr)
            .unwrap()
            .build_responder()
            .unwrap();
        let (mut msg, mut out) = (vec![0u8; MAX_NOISE], vec![0u8; MAX_NOISE]);
        for step in 0..3 {
            let (w, rd) = if step % 2 == 0 {
                (&mut i, &mut r)
            } else {
                (&mut r, &mut i)
            };
            let n = w.write_message(&[], &mut msg).unwrap();
            rd.read_message(&msg[..n], &mut out).unwrap();
        }
        assert!(i.is_handshake_finished() && r.is_handshake_finished());
        (i, r)
    }

    #[test]
    fn the_in_place_cipher_is_noise_aesgcm_as_snow_speaks_it() {
        let (mut i, mut r) = handshake();
        let (k1, k2) = i.dangerously_get_raw_split();
        assert_eq!((k1, k2), r.dangerously_get_raw_split());
        let snow_i = i.into_stateless_transport_mode().unwrap();
        let snow_r = r.into_stateless_transport_mode().unwrap();
        let (mut send_i, mut recv_r) = (Cipher::new(&k1).unwrap(), Cipher::new(&k1).unwrap());
        let (mut send_r, mut recv_i) = (Cipher::new(&k2).unwrap(), Cipher::new(&k2).unwrap());
        let mut theirs = vec![0u8; MAX_NOISE];
        for (n, len) in [0usize, 1, 1000, deepnode_wire::MAX_PLAINTEXT]
            .iter()
            .enumerate()
        {
            let n = n as u64;
            let text: Vec<u8> = (0..*len).map(|b| (b * 7 + 3) as u8).collect();
            // Initiator to responder: the same bytes as snow's, and each opens the other's.
            let mut ours = text.clone();
            ours.resize(len + TAG_LEN, 0);
            send_i.seal(&mut ours).unwrap();
            let m = snow_i.write_message(n, &text, &mut theirs).unwrap();
            assert_eq!(ours, theirs[..m]);
            let mut plain = vec![0u8; MAX_NOISE];
            let p = snow_r.read_message(n, &ours, &mut plain).unwrap();
            assert_eq!(plain[..p], text);
            assert_eq!(recv_r.open(&mut theirs[..m]).unwrap(), text);
            // Responder to initiator, with the second key.
            let m = snow_r.write_message(n, &text, &mut theirs).unwrap();
            assert_eq!(recv_i.open(&mut theirs[..m]).unwrap(), text);
            let mut ours = text.clone();
            ours.resize(len + TAG_LEN, 0);
            send_r.seal(&mut ours).unwrap();
            assert_eq!(snow_i.read_message(n, &ours, &mut plain).unwrap(), *len);
        }
    }

    #[test]
    fn a_replayed_or_forged_frame_fails_and_nonces_stop_before_the_reserved_one() {
        let key = [9u8; 32];
        let (mut tx, mut rx) = (Cipher::new(&key).unwrap(), Cipher::new(&key).unwrap());
        let mut a = b"first message\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0".to_vec();
        tx.seal(&mut a).unwrap();
        let replay = a.clone();
        assert!(rx.open(&mut a).is_ok());
        assert!(rx.open(&mut replay.clone()).is_err(), "replayed");
        let mut b = vec![0u8; 40];
        tx.seal(&mut b).unwrap();
        let mut forged = b.clone();
        forged[3] ^= 1;
        assert!(rx.open(&mut forged).is_err(), "forged");
        // A failed frame does not move the counter: the genuine one still opens.
        assert!(rx.open(&mut b).is_ok());
        assert!(rx.open(&mut [0u8; 15]).is_err(), "shorter than a tag");
        tx.n = u64::MAX - 1;
        assert!(tx.seal(&mut [0u8; 16]).is_ok());
        assert!(tx.seal(&mut [0u8; 16]).is_err(), "2^64 - 1 is reserved");
        rx.n = u64::MAX;
        assert!(rx.open(&mut [0u8; 16]).is_err());
    }
}
