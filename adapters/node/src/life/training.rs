//! The trainer on its own thread: the runner sends it jobs over a channel and awaits each
//! answer, so training (CPU work) never holds the network threads, and the trainer never
//! leaves its thread.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc;

use deepnode_consensus::Uid;
use tokio::sync::oneshot;

use super::dial::Peers;
use super::{RunConfig, Status};
use crate::query::{Answer, fan_out};
use crate::{Ask, Connection, Model, NodeError, Progress, Tensor, Trainer};

/// What a training step returns: each answering peer's gradient, and the progress after it.
type Learned = Result<(Vec<(Uid, Tensor)>, Progress), NodeError>;

/// A job for the trainer's thread, with where its answer goes.
enum Job {
    /// [`Trainer::ask`].
    Ask(Uid, oneshot::Sender<Result<Ask, NodeError>>),
    /// [`Trainer::learn`], then [`Trainer::progress`].
    Learn(Vec<(Uid, Option<Tensor>)>, oneshot::Sender<Learned>),
    /// [`Trainer::take_scores`].
    TakeScores(oneshot::Sender<Vec<(Uid, f64)>>),
}

/// A trainer running on its own thread; the thread ends once this handle is dropped (after
/// the job under way).
pub(super) struct TrainerThread {
    jobs: mpsc::Sender<Job>,
}

impl TrainerThread {
    /// Moves `trainer` onto a thread of its own.
    pub(super) fn start(mut trainer: Box<dyn Trainer>) -> Result<TrainerThread, NodeError> {
        let (jobs, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("deepnode-trainer".into())
            .spawn(move || {
                for job in rx {
                    // A receiver gone (the runner stopped) drops the answer.
                    match job {
                        Job::Ask(me, tx) => {
                            let _ = tx.send(trainer.ask(me));
                        }
                        Job::Learn(answers, tx) => {
                            let r = trainer.learn(answers).map(|g| (g, trainer.progress()));
                            let _ = tx.send(r);
                        }
                        Job::TakeScores(tx) => {
                            let _ = tx.send(trainer.take_scores());
                        }
                    }
                }
            })
            .map_err(|e| NodeError::Model(format!("trainer thread: {e}")))?;
        Ok(TrainerThread { jobs })
    }

    /// Sends a job and awaits its answer; fails when the thread is gone (the trainer
    /// panicked).
    async fn call<R>(&self, job: impl FnOnce(oneshot::Sender<R>) -> Job) -> Result<R, NodeError> {
        let stopped =
            || NodeError::Model("trainer thread: the trainer stopped (it panicked)".into());
        let (tx, rx) = oneshot::channel();
        self.jobs.send(job(tx)).map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())
    }

    /// The trainer's scores since the last call ([`Trainer::take_scores`]).
    pub(super) async fn take_scores(&self) -> Result<Vec<(Uid, f64)>, NodeError> {
        self.call(Job::TakeScores).await
    }

    /// One training step: the trainer's batch goes to the peers its gate chose (this node's
    /// own slot answered by its own model; peers not connected answer nothing), the answers
    /// train it, and the gradients it returns go back to their peers, fire and forget. Each
    /// asked peer's answer or failure is counted in `status`; returns the trainer's progress.
    pub(super) async fn step(
        &self,
        cfg: &RunConfig,
        model: &Arc<dyn Model>,
        uid: Uid,
        peers: &mut Peers,
        status: &mut Status,
    ) -> Result<Progress, NodeError> {
        let ask = self.call(|tx| Job::Ask(uid, tx)).await??;
        let asked: Vec<(Uid, Arc<Connection>)> = ask
            .uids
            .iter()
            .filter_map(|j| peers.connected.get(j).map(|p| (*j, Arc::clone(&p.conn))))
            .collect();
        // A failed peer's slot is the trainer's to fill (it gets `None`): the stand-in here is
        // never read.
        let unread = |_| Tensor::zeros(&[1, 1, 1]);
        let fanned = fan_out(
            &asked,
            &mut peers.backoff,
            cfg.modality,
            &ask.inputs,
            cfg.timeout,
            unread,
        )
        .await?;
        let mut answers: Vec<(Uid, Option<Tensor>)> = Vec::with_capacity(ask.uids.len());
        for j in &ask.uids {
            let answer = if *j == uid {
                model.forward(cfg.modality, &ask.inputs).ok()
            } else {
                let a = fanned.iter().find(|(u, _)| u == j).map(|(_, a)| a);
                status.count(*j, a);
                match a {
                    Some(Answer::Peer(t)) => Some(t.clone()),
                    _ => None,
                }
            };
            answers.push((*j, answer));
        }
        let (grads, progress) = self.call(|tx| Job::Learn(answers, tx)).await??;
        let connected: &HashMap<Uid, _> = &peers.connected;
        for (j, g) in grads {
            if let Some(p) = connected.get(&j) {
                let _ = p
                    .conn
                    .backward(cfg.modality, &ask.inputs, &g, cfg.timeout)
                    .await;
            }
        }
        Ok(progress)
    }
}
