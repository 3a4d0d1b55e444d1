//! The model side: encoders on generated data, training on the text shard, remote gradients
//! equal to end-to-end training, refusals, distillation figures and checkpoints.

use deepnode_node::{Model, Tensor as NodeTensor};
use deepnode_torch::convert::{to_node, to_tch, tokens_to_node};
use deepnode_torch::data::{self, TextCorpus};
use deepnode_torch::{EncoderConfig, LocalConfig, LocalModel, Mixture, ServeConfig, TorchModel};
use deepnode_wire::Modality;
use tch::{Kind, Tensor};

fn peers(n: i64, config: ServeConfig) -> Vec<TorchModel> {
    (0..n)
        .map(|j| TorchModel::new(100 + j, EncoderConfig::default(), config).unwrap())
        .collect()
}

fn small() -> LocalConfig {
    LocalConfig {
        peers: 4,
        k: 2,
        ..LocalConfig::default()
    }
}

fn ask(peers: &[TorchModel]) -> impl FnMut(usize, &NodeTensor) -> Option<NodeTensor> + '_ {
    move |j, x| peers[j].forward(Modality::Text, x).ok()
}

fn max_diff(a: &[(String, Tensor)], b: &[(String, Tensor)]) -> f64 {
    a.iter()
        .zip(b)
        .map(|((na, ta), (nb, tb))| {
            assert_eq!(na, nb);
            (ta - tb).abs().max().double_value(&[])
        })
        .fold(0.0, f64::max)
}

#[test]
fn encoders_map_generated_data_to_b_s_d_and_text_is_causal() {
    let model = TorchModel::new(7, EncoderConfig::default(), ServeConfig::default()).unwrap();
    let text = Tensor::from_slice(&(0..40).map(|i| (i * 37 % 256) as i64).collect::<Vec<_>>())
        .view([2, 20]);
    let out = model.forward_tch(Modality::Text, &text).unwrap();
    assert_eq!(out.size(), [2, 20, 32]);
    // Changing byte 12 leaves positions 0..12 untouched.
    let changed = text.copy();
    let _ = changed.get(0).get(12).fill_(99);
    let out2 = model.forward_tch(Modality::Text, &changed).unwrap();
    let before = (out.narrow(1, 0, 12) - out2.narrow(1, 0, 12))
        .abs()
        .max()
        .double_value(&[]);
    let after = (out.narrow(1, 12, 8) - out2.narrow(1, 12, 8))
        .abs()
        .max()
        .double_value(&[]);
    assert_eq!(before, 0.0);
    assert!(after > 0.0);
    let feats = data::features(3, 5, 16, 1);
    assert_eq!(
        model.forward_tch(Modality::Tensor, &feats).unwrap().size(),
        [3, 5, 32]
    );
    let imgs = data::images(2, 3, 16, 12, 2);
    assert_eq!(
        model.forward_tch(Modality::Image, &imgs).unwrap().size(),
        [2, 1, 32]
    );
    assert!(
        model
            .forward_tch(Modality::Image, &data::images(2, 3, 15, 12, 2))
            .is_err()
    );
    assert!(
        model
            .forward_tch(Modality::Tensor, &data::features(3, 5, 7, 1))
            .is_err()
    );
    assert!(model.forward_tch(Modality::Speech, &feats).is_err());
    assert!(
        model
            .forward_tch(
                Modality::Text,
                &Tensor::from_slice(&[300i64, 1]).view([1, 2])
            )
            .is_err()
    );
}

/// Remote gradients train the TENSOR and IMAGE encoders: a caller regressing their output
/// onto a fixed target sends `dL/df = 2 (f - y) / n` and the error falls.
#[test]
fn tensor_and_image_encoders_learn_from_remote_gradients() {
    let model = TorchModel::new(
        8,
        EncoderConfig::default(),
        ServeConfig {
            rate: 0.05,
            max_norm: 5.0,
        },
    )
    .unwrap();
    for (modality, x) in [
        (Modality::Tensor, data::features(4, 6, 16, 3)),
        (Modality::Image, data::images(4, 3, 8, 8, 4)),
    ] {
        let wire = to_node(&x).unwrap();
        let out = model.forward_tch(modality, &x).unwrap();
        let target = data::features(out.size()[0] as usize, out.size()[1] as usize, 32, 5) * 0.5;
        let err = |m: &TorchModel| {
            (m.forward_tch(modality, &x).unwrap() - &target)
                .square()
                .mean(Kind::Float)
                .double_value(&[])
        };
        let start = err(&model);
        for _ in 0..60 {
            let f = model.forward_tch(modality, &x).unwrap();
            let grad = (f - &target) * (2.0 / target.numel() as f64);
            model
                .backward(modality, &wire, &to_node(&grad).unwrap())
                .unwrap();
        }
        let end = err(&model);
        assert!(end < 0.7 * start, "{modality:?}: {start} -> {end}");
    }
}

#[test]
fn training_lowers_the_loss_on_the_text_shard_and_the_student_stands_in() {
    let peers = peers(4, ServeConfig::default());
    let mut node = LocalModel::new(small()).unwrap();
    let corpus = TextCorpus::system_shard(0, 4).unwrap();
    let valid = corpus.valid_batch(16, 32);
    let first = node
        .evaluate(&valid, Mixture::Peers, &mut ask(&peers))
        .unwrap();
    let (mut losses, mut kls) = (Vec::new(), Vec::new());
    for step in 0..300 {
        let batch = corpus.train_batch(8, 32, step);
        let report = node.step(&batch, &mut ask(&peers)).unwrap();
        assert!(report.missing.is_empty());
        let inputs = tokens_to_node(&batch.narrow(1, 0, 32)).unwrap();
        for (j, grad) in &report.grads {
            peers[*j].backward(Modality::Text, &inputs, grad).unwrap();
        }
        losses.push(report.loss);
        kls.push(report.distill);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (early, late) = (mean(&losses[..20]), mean(&losses[280..]));
    let with_peers = node
        .evaluate(&valid, Mixture::Peers, &mut ask(&peers))
        .unwrap();
    let with_student = node
        .evaluate(&valid, Mixture::Student, &mut ask(&peers))
        .unwrap();
    let with_zeros = node
        .evaluate(&valid, Mixture::Zeros, &mut ask(&peers))
        .unwrap();
    println!(
        "train {early:.3} -> {late:.3}; validation {first:.3} -> peers {with_peers:.3}, \
         student {with_student:.3}, zeros {with_zeros:.3}; KL {:.4} -> {:.4}; epoch Fisher {:?}",
        mean(&kls[..20]),
        mean(&kls[280..]),
        node.epoch_scores()
    );
    assert!(late < early - 1.0, "train loss {early} -> {late}");
    assert!(
        with_peers < first - 1.0,
        "validation {first} -> {with_peers}"
    );
    // The mixing head starts at zero, so the early KL is small by construction (the peers'
    // answers barely move the output yet); what distillation must give is a student that
    // stands in for the peers better than nothing.
    assert!(kls.iter().all(|k| k.is_finite() && *k >= 0.0));
    assert!(
        with_student < with_zeros,
        "student {with_student} vs zeros {with_zeros}"
    );
    assert!(
        node.epoch_scores()
            .iter()
            .all(|s| s.is_finite() && *s >= 0.0)
    );
}

#[test]
fn remote_gradients_equal_end_to_end_training() {
    let config = ServeConfig {
        rate: 0.1,
        max_norm: 1e9,
    };
    let split_peers = peers(2, config);
    let joint_peers = peers(2, config);
    let local_config = LocalConfig {
        peers: 2,
        k: 2,
        ..LocalConfig::default()
    };
    let mut split = LocalModel::new(local_config).unwrap();
    let mut joint = LocalModel::new(local_config).unwrap();
    let corpus = TextCorpus::system_shard(2, 4).unwrap();
    // The mixing head starts at zero (no gradient reaches a peer yet): one identical step on
    // both models first, with the same answers, gives it weight.
    let warm = peers(2, config);
    let first = corpus.train_batch(4, 16, 2);
    split.step(&first, &mut ask(&warm)).unwrap();
    joint.step(&first, &mut ask(&warm)).unwrap();
    let batch = corpus.train_batch(4, 16, 3);

    // Over the wire: responses as detached leaves, gradients sent back and applied.
    let routed = split.route(&batch, true).unwrap();
    let wire = tokens_to_node(&routed.inputs).unwrap();
    let leaves: Vec<Tensor> = split_peers
        .iter()
        .map(|p| {
            to_tch(&p.forward(Modality::Text, &wire).unwrap())
                .unwrap()
                .set_requires_grad(true)
        })
        .collect();
    let loss = split.loss(&routed, &leaves).unwrap();
    loss.total.backward();
    for (p, leaf) in split_peers.iter().zip(&leaves) {
        p.backward(Modality::Text, &wire, &to_node(&leaf.grad()).unwrap())
            .unwrap();
    }

    // One graph: the peers' encoders inside the node's loss.
    let routed = joint.route(&batch, true).unwrap();
    let attached: Vec<Tensor> = joint_peers
        .iter()
        .map(|p| p.forward_attached(Modality::Text, &routed.inputs).unwrap())
        .collect();
    let joint_loss = joint.loss(&routed, &attached).unwrap();
    joint_loss.total.backward();
    for p in &joint_peers {
        p.step_accumulated().unwrap();
    }

    assert_eq!(
        loss.total.double_value(&[]),
        joint_loss.total.double_value(&[])
    );
    let before = max_diff(
        &peers(2, config)[0].parameters().unwrap(),
        &split_peers[0].parameters().unwrap(),
    );
    assert!(before > 0.0, "the step moved the parameters");
    for (a, b) in split_peers.iter().zip(&joint_peers) {
        assert_eq!(
            max_diff(&a.parameters().unwrap(), &b.parameters().unwrap()),
            0.0
        );
    }
}

#[test]
fn bad_remote_gradients_and_answers_are_refused() {
    let model = TorchModel::new(3, EncoderConfig::default(), ServeConfig::default()).unwrap();
    let before = model.parameters().unwrap();
    let inputs = NodeTensor::from_i64(&[2, 4], &[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
    let mut nan = vec![0.1f32; 2 * 4 * 32];
    nan[17] = f32::NAN;
    let bad = [
        NodeTensor::from_f32(&[2, 4, 32], &nan).unwrap(),
        NodeTensor::from_f32(&[2, 4, 31], &vec![0.1; 2 * 4 * 31]).unwrap(),
        NodeTensor::from_f32(&[2, 3, 32], &vec![0.1; 2 * 3 * 32]).unwrap(),
        NodeTensor::from_f32(&[2 * 4 * 32], &vec![0.1; 2 * 4 * 32]).unwrap(),
        NodeTensor::from_i64(&[2, 4, 32], &vec![1; 2 * 4 * 32]).unwrap(),
        NodeTensor::from_f32(&[2, 4, 32], &vec![f32::INFINITY; 2 * 4 * 32]).unwrap(),
    ];
    for grad in &bad {
        assert!(
            model.backward(Modality::Text, &inputs, grad).is_err(),
            "{:?}",
            grad.shape
        );
    }
    assert_eq!(max_diff(&before, &model.parameters().unwrap()), 0.0);
    // A huge but finite gradient moves the parameters by at most rate * max_norm.
    let huge = NodeTensor::from_f32(&[2, 4, 32], &vec![1e6; 2 * 4 * 32]).unwrap();
    model.backward(Modality::Text, &inputs, &huge).unwrap();
    let moved: f64 = before
        .iter()
        .zip(model.parameters().unwrap())
        .map(|((_, a), (_, b))| (a - b).square().sum(Kind::Double).double_value(&[]))
        .sum::<f64>()
        .sqrt();
    assert!(moved > 0.0 && moved <= 0.01 * 1.0 + 1e-6, "moved {moved}");

    // A node refuses a NaN or misshapen answer: zeros stand in, no gradient goes back.
    let mut node = LocalModel::new(small()).unwrap();
    let batch = TextCorpus::system_shard(3, 4).unwrap().train_batch(2, 8, 1);
    let report = node
        .step(&batch, &mut |j, _| match j {
            0 => NodeTensor::from_f32(&[2, 8, 32], &vec![f32::NAN; 2 * 8 * 32]).ok(),
            1 => NodeTensor::from_f32(&[2, 8, 16], &vec![0.0; 2 * 8 * 16]).ok(),
            _ => None,
        })
        .unwrap();
    assert!(report.grads.is_empty());
    assert!(report.loss.is_finite());
}

#[test]
fn checkpoints_round_trip_and_a_restarted_node_resumes() {
    let peers = peers(4, ServeConfig::default());
    let corpus = TextCorpus::system_shard(0, 4).unwrap();
    let config = small();
    let mut node = LocalModel::new(config).unwrap();
    for step in 0..5 {
        node.step(&corpus.train_batch(4, 16, step), &mut ask(&peers))
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    node.save(dir.path()).unwrap();
    peers[0].save(&dir.path().join("peer0.ot")).unwrap();
    let mut restarted = LocalModel::new(LocalConfig { seed: 99, ..config }).unwrap();
    let valid = corpus.valid_batch(4, 16);
    for mixture in [Mixture::Peers, Mixture::Student, Mixture::Zeros] {
        assert_ne!(
            node.evaluate(&valid, mixture, &mut ask(&peers)).unwrap(),
            restarted
                .evaluate(&valid, mixture, &mut ask(&peers))
                .unwrap()
        );
    }
    restarted.load(dir.path()).unwrap();
    assert_eq!(restarted.steps(), 5);
    for mixture in [Mixture::Peers, Mixture::Student, Mixture::Zeros] {
        assert_eq!(
            node.evaluate(&valid, mixture, &mut ask(&peers)).unwrap(),
            restarted
                .evaluate(&valid, mixture, &mut ask(&peers))
                .unwrap()
        );
    }
    let peer = TorchModel::new(55, EncoderConfig::default(), ServeConfig::default()).unwrap();
    peer.load(&dir.path().join("peer0.ot")).unwrap();
    assert_eq!(
        max_diff(&peer.parameters().unwrap(), &peers[0].parameters().unwrap()),
        0.0
    );
    assert!(restarted.load(&dir.path().join("missing")).is_err());
}

#[test]
fn a_peer_that_stops_answering_is_muted_then_asked_again() {
    let peers = peers(4, ServeConfig::default());
    let mut node = LocalModel::new(LocalConfig {
        mute_after: 3,
        mute_steps: 20,
        ..small()
    })
    .unwrap();
    let corpus = TextCorpus::system_shard(0, 4).unwrap();
    // Peer 1 answers for 30 steps, then leaves.
    let mut asked_after_mute = Vec::new();
    let mut muted_at = None;
    for step in 0..120u64 {
        let batch = corpus.train_batch(8, 32, step);
        let gone = step >= 30;
        let mut query = |j: usize, x: &NodeTensor| {
            if j == 1 && gone {
                None
            } else {
                peers[j].forward(Modality::Text, x).ok()
            }
        };
        let chosen = node.route(&batch, true).unwrap().chosen;
        let report = node.step(&batch, &mut query).unwrap();
        assert!(report.loss.is_finite());
        assert!(report.fisher.iter().all(|f| f.is_finite()));
        if muted_at.is_some() {
            asked_after_mute.push((step, chosen.contains(&1)));
        }
        if muted_at.is_none() && node.muted() == [1] {
            muted_at = Some(step);
        }
        if !gone {
            assert!(
                node.muted().is_empty(),
                "muted at step {step} while answering"
            );
        }
    }
    let muted_at = muted_at.expect("the silent peer was never muted");
    // Three failed asks in a row from step 30 (with k = 2 of 4 it is chosen in most steps).
    assert!((32..45).contains(&muted_at), "muted at {muted_at}");
    // Muted: not chosen for 20 steps, in training and in evaluation.
    assert!(asked_after_mute.iter().take(20).all(|&(_, asked)| !asked));
    let valid = corpus.valid_batch(16, 32);
    // Asked again after the 20 steps, then muted again at once on its first failure.
    let again: Vec<u64> = asked_after_mute
        .iter()
        .filter(|&&(_, asked)| asked)
        .map(|&(s, _)| s)
        .collect();
    assert!(!again.is_empty(), "never asked again");
    assert!(again[0] >= muted_at + 21, "asked again at {}", again[0]);
    assert!(again.windows(2).all(|w| w[1] >= w[0] + 21), "{again:?}");
    let routed = node.route(&valid, false).unwrap();
    assert_eq!(node.muted().contains(&1), !routed.chosen.contains(&1));
}

#[test]
fn more_distillation_steps_bring_the_student_closer_to_the_mixture() {
    let peers = peers(4, ServeConfig::default());
    let corpus = TextCorpus::system_shard(0, 4).unwrap();
    let kl_after = |student_steps: u32| {
        let mut node = LocalModel::new(LocalConfig {
            student_steps,
            ..small()
        })
        .unwrap();
        let mut kls = Vec::new();
        for step in 0..80 {
            let batch = corpus.train_batch(8, 32, step);
            kls.push(node.step(&batch, &mut ask(&peers)).unwrap().distill);
        }
        kls[60..].iter().sum::<f64>() / 20.0
    };
    let (one, three) = (kl_after(1), kl_after(3));
    assert!(three < one, "KL with three steps {three} vs one {one}");
    assert!(
        LocalModel::new(LocalConfig {
            student_steps: 0,
            ..small()
        })
        .is_err()
    );
}
