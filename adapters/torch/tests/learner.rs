//! [`Learner`] through the node's `Trainer` seam: the gate's asks, training on the answers,
//! gradients for the peers that answered, validation rounds, the served encoder following the
//! trained one, and no Fisher score for a peer that answers zeros or nothing.

use std::sync::Arc;

use deepnode_node::{Constant, Model, Noise, Tensor as NodeTensor, Trainer};
use deepnode_torch::data::TextCorpus;
use deepnode_torch::{EncoderConfig, Learner, LearnerConfig, LocalConfig, ServeConfig, TorchModel};
use deepnode_wire::Modality;

#[test]
fn a_learner_trains_on_answers_and_serves_what_it_learns() {
    let text: Vec<u8> = (0..400)
        .flat_map(|i| {
            format!("line {i}: the quick brown fox jumps over the lazy dog.\n").into_bytes()
        })
        .collect();
    let corpus = TextCorpus::from_bytes(text);
    let config = LearnerConfig {
        local: LocalConfig {
            peers: 5,
            k: 2,
            seed: 3,
            ..LearnerConfig::default().local
        },
        eval_every: 20,
        sync_every: 5,
        ..LearnerConfig::default()
    };
    let mut learner = Learner::new(config, corpus).unwrap();
    let served =
        Arc::new(TorchModel::new(3, EncoderConfig::default(), ServeConfig::default()).unwrap());
    learner.serve_through(Arc::clone(&served)).unwrap();
    // Uid 0 is this node (its served model), 1 another encoder, 2 noise, 3 zeros, 4 never answers.
    let other = TorchModel::new(9, EncoderConfig::default(), ServeConfig::default()).unwrap();
    let noise = Noise::new(5, 32, 1.0);
    let zeros = Constant::new(32, 0.0);
    let answer = |uid: u32, x: &NodeTensor| -> Option<NodeTensor> {
        let m: &dyn Model = match uid {
            0 => served.as_ref(),
            1 => &other,
            2 => &noise,
            3 => &zeros,
            _ => return None,
        };
        m.forward(Modality::Text, x).ok()
    };
    let mut asked_all = std::collections::BTreeSet::new();
    for _ in 0..60 {
        let ask = learner.ask(0).unwrap();
        // Training batches are 4 windows, validation batches `eval_batch` (16).
        let dims = ask.inputs.shape.dims();
        assert!(dims == [4, 32] || dims == [16, 32], "{dims:?}");
        asked_all.extend(ask.uids.iter().copied());
        let answers: Vec<(u32, Option<NodeTensor>)> = ask
            .uids
            .iter()
            .map(|&j| (j, answer(j, &ask.inputs)))
            .collect();
        let answered: Vec<u32> = answers
            .iter()
            .filter(|a| a.1.is_some())
            .map(|a| a.0)
            .collect();
        let grads = learner.learn(answers).unwrap();
        // Gradients go only to peers that answered, shaped like their answers.
        for (j, g) in &grads {
            assert!(
                answered.contains(j),
                "gradient for {j}, which did not answer"
            );
            assert_eq!(g.shape.dims(), [4, 32, 32]);
        }
        let steps = learner.progress().steps;
        if steps > 0 && steps.is_multiple_of(5) && !grads.is_empty() {
            // Just synced: the served encoder is the trained one.
            let trained = learner.model().encoder_parameters();
            let serving = served.parameters().unwrap();
            let serving: Vec<_> = serving
                .iter()
                .filter(|(n, _)| n.starts_with("encoder."))
                .collect();
            assert_eq!(trained.len(), serving.len());
            for ((a, ta), (b, tb)) in trained.iter().zip(serving) {
                assert_eq!(a, b);
                assert_eq!((ta - tb).abs().max().double_value(&[]), 0.0, "{a}");
            }
        }
    }
    let p = learner.progress();
    // 60 asks: the validation rounds (at steps 20 and 40) take two of them.
    assert_eq!(p.steps, 58);
    assert!(p.loss.is_some_and(f64::is_finite));
    let get = |k: &str| p.valid.iter().find(|v| v.0 == k).map(|v| v.1);
    for key in ["peers", "student", "zeros", "alone"] {
        assert!(
            get(&format!("text/{key}")).is_some_and(f64::is_finite),
            "text/{key} in {:?}",
            p.valid
        );
    }
    assert_eq!(get("text/own"), Some(1.0));
    assert_eq!(get("text/rounds"), Some(2.0));
    assert!(get("others/gain").is_none(), "one domain: no others");
    assert!(
        asked_all.len() >= 4,
        "the noisy gate tries most peers: {asked_all:?}"
    );
    let scores = learner.take_scores();
    assert_eq!(scores.len(), 5);
    assert!(scores.iter().all(|s| s.1.is_finite() && s.1 >= 0.0));
    assert_eq!(scores[3].1, 0.0, "zeros move nothing: no Fisher score");
    assert_eq!(scores[4].1, 0.0, "a peer that never answers has no score");
    // Scores start afresh.
    assert!(learner.take_scores().iter().all(|s| s.1 == 0.0));
}

/// Two domains of generated text: each learner trains mostly on its own and is evaluated on
/// both; the summary has every domain's losses and interval, the gain on the other domain, and
/// per peer the loss rise without its answers.
#[test]
fn a_specialist_is_evaluated_on_every_domain_and_measures_each_peers_value() {
    let text = |word: &str| -> Vec<u8> {
        (0..600)
            .flat_map(|i| format!("{word} {i} {word}.\n").into_bytes())
            .collect()
    };
    let config = LearnerConfig {
        local: LocalConfig {
            peers: 3,
            k: 2,
            seed: 5,
            ..LearnerConfig::default().local
        },
        eval_every: 5,
        window: 3,
        ..LearnerConfig::default()
    };
    let mut learner = Learner::with_domains(
        config,
        ("alpha".into(), TextCorpus::from_bytes(text("alpha"))),
        vec![("beta".into(), TextCorpus::from_bytes(text("beta")))],
    )
    .unwrap();
    // Uid 0 is this node, 1 another encoder, 2 noise.
    let me = TorchModel::new(5, EncoderConfig::default(), ServeConfig::default()).unwrap();
    let other = TorchModel::new(6, EncoderConfig::default(), ServeConfig::default()).unwrap();
    let noise = Noise::new(1, 32, 1.0);
    let mut seen: Vec<u8> = Vec::new();
    for _ in 0..48 {
        let ask = learner.ask(0).unwrap();
        let bytes: Vec<u8> = Vec::<i64>::try_from(
            deepnode_torch::convert::to_tch(&ask.inputs)
                .unwrap()
                .view(-1),
        )
        .unwrap()
        .into_iter()
        .map(|b| b as u8)
        .collect();
        seen.extend(bytes);
        let answers = ask
            .uids
            .iter()
            .map(|&j| {
                let m: &dyn Model = match j {
                    0 => &me,
                    1 => &other,
                    _ => &noise,
                };
                (j, m.forward(Modality::Text, &ask.inputs).ok())
            })
            .collect();
        learner.learn(answers).unwrap();
    }
    let has = |word: &[u8]| seen.windows(word.len()).any(|w| w == word);
    assert!(
        has(b"alpha") && has(b"beta"),
        "training and validation see both domains"
    );
    let p = learner.progress();
    let get = |k: &str| p.valid.iter().find(|v| v.0 == k).map(|v| v.1);
    // 48 asks, every fifth step a round: the rounds alternate between the domains.
    for d in ["alpha", "beta"] {
        for key in ["peers", "student", "zeros", "alone", "gain_lo", "gain_hi"] {
            assert!(
                get(&format!("{d}/{key}")).is_some_and(f64::is_finite),
                "{d}/{key} in {:?}",
                p.valid
            );
        }
        let rounds = get(&format!("{d}/rounds")).unwrap();
        assert!((1.0..=3.0).contains(&rounds), "window of 3: {rounds}");
        let (lo, hi) = (
            get(&format!("{d}/gain_lo")).unwrap(),
            get(&format!("{d}/gain_hi")).unwrap(),
        );
        assert!(lo <= hi, "{lo} {hi}");
    }
    assert_eq!(get("alpha/own"), Some(1.0));
    assert_eq!(get("beta/own"), Some(0.0));
    let beta_gain = get("beta/alone").unwrap() - get("beta/peers").unwrap();
    assert!(
        (get("others/gain").unwrap() - beta_gain).abs() < 1e-9,
        "one other domain: its gain"
    );
    assert!(get("others/gain_lo").unwrap() <= get("others/gain_hi").unwrap());
    // A value for each peer that answered a validation round, finite.
    let values: Vec<(&str, f64)> = p
        .valid
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("value/")?, *v)))
        .collect();
    assert!(!values.is_empty(), "{:?}", p.valid);
    assert!(values.iter().all(|v| v.1.is_finite()));
}

#[test]
fn every_domain_reads_from_this_system_and_unknown_names_are_refused() {
    use deepnode_torch::data::Domain;
    for d in Domain::ALL {
        assert_eq!(Domain::parse(d.name()).unwrap(), d);
        let corpus = d.corpus().unwrap();
        assert!(corpus.train_len() >= 16 << 10, "{}", d.name());
        assert!(corpus.train_len() <= Domain::MAX_BYTES);
    }
    let e = Domain::parse("klingon").unwrap_err().to_string();
    assert!(e.contains("klingon") && e.contains("python"), "{e}");
}
