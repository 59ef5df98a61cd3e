//! A minion written with the protocol's parts only: a REQ socket on the return port and real
//! keys, for tests that drive the master's side of the channel message by message.

use brine_crypto::{MasterPublic, MinionKeys, Session};
use brine_proto::codec::BodyKind;
use brine_proto::{decode, encode, Envelope, Map, MasterReply, MinionId, MinionRequest};
use zeromq::{ReqSocket, Socket, SocketRecv, SocketSend, ZmqMessage};

use crate::within;

/// A minion written with the protocol's parts only.
pub struct RawMinion {
    socket: ReqSocket,
    /// The session id and keys after a welcome.
    pub session: Option<(u64, Session)>,
    keys: MinionKeys,
    /// The master's public keys, once asked.
    pub master: Option<MasterPublic>,
    /// The last handshake message sent, for replay tests.
    pub last_msg1: Vec<u8>,
}

impl std::fmt::Debug for RawMinion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawMinion")
            .field("session", &self.session.as_ref().map(|(sid, _)| sid))
            .field("fingerprint", &self.keys.fingerprint().to_string())
            .finish_non_exhaustive()
    }
}

impl RawMinion {
    /// A REQ socket to the master's return port, and a fresh key.
    pub async fn connect(ret_port: u16) -> Self {
        let mut socket = ReqSocket::new();
        within(
            "connecting",
            socket.connect(&format!("tcp://127.0.0.1:{ret_port}")),
        )
        .await
        .unwrap();
        Self {
            socket,
            session: None,
            keys: MinionKeys::generate(),
            master: None,
            last_msg1: Vec::new(),
        }
    }

    /// A fresh key for the next handshake: one socket can present any number of keys.
    pub fn new_key(&mut self) {
        self.keys = MinionKeys::generate();
        self.session = None;
    }

    pub async fn exchange(&mut self, envelope: Envelope) -> Envelope {
        within("an exchange", async {
            self.socket
                .send(ZmqMessage::from(envelope.to_bytes()))
                .await
                .unwrap();
            let reply = self.socket.recv().await.unwrap();
            Envelope::from_bytes(&reply.into_vec()[0]).unwrap()
        })
        .await
    }

    pub async fn master_keys(&mut self) -> MasterPublic {
        let answer = self
            .exchange(Envelope::new(
                BodyKind::Plain,
                None,
                encode(&MinionRequest::MasterKeys {}),
            ))
            .await;
        let Ok(MasterReply::MasterKeys { noise, sign }) = decode(&answer.body) else {
            panic!("no master keys: {answer:?}");
        };
        let public = MasterPublic {
            noise: noise.try_into().unwrap(),
            sign: sign.try_into().unwrap(),
        };
        self.master = Some(public);
        public
    }

    /// Handshakes as `id`; returns the master's reply to hello.
    pub async fn hello(&mut self, id: &str) -> MasterReply {
        let master = match self.master {
            Some(master) => master,
            None => self.master_keys().await,
        };
        let hello = MinionRequest::Hello {
            id: MinionId::new(id).unwrap(),
            version: "test".into(),
            grains: Map::new(),
        };
        let (initiator, msg1) =
            brine_crypto::initiate(&self.keys, &master, &encode(&hello)).unwrap();
        self.last_msg1 = msg1.clone();
        let answer = self
            .exchange(Envelope::new(BodyKind::Handshake, None, msg1))
            .await;
        assert_eq!(answer.kind, BodyKind::Handshake, "{answer:?}");
        let (session, payload) = initiator.finish(&answer.body).unwrap();
        let reply: MasterReply = decode(&payload).unwrap();
        if let MasterReply::Welcome { session: sid, .. } = &reply {
            self.session = Some((*sid, session));
        }
        reply
    }

    /// Sends a request in the session; returns the sealed request's bytes and the answer.
    pub async fn ask(&mut self, request: &MinionRequest) -> (Vec<u8>, MasterReply) {
        let (sid, session) = self.session.as_mut().expect("a session");
        let sid = *sid;
        let sealed = session.seal(&encode(request)).unwrap();
        let answer = self
            .exchange(Envelope::new(BodyKind::Sealed, Some(sid), sealed.clone()))
            .await;
        let reply = match answer.kind {
            BodyKind::Sealed => {
                let (_, session) = self.session.as_mut().unwrap();
                decode(&session.open(&answer.body).unwrap()).unwrap()
            }
            _ => decode(&answer.body).unwrap(),
        };
        (sealed, reply)
    }

    pub async fn send_raw(&mut self, envelope: Envelope) -> MasterReply {
        let answer = self.exchange(envelope).await;
        assert_eq!(answer.kind, BodyKind::Plain, "{answer:?}");
        decode(&answer.body).unwrap()
    }
}
