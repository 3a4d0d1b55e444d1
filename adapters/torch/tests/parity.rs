//! Torch against `deepnode-gating`: the gate, the mixture and the load-balancing terms
//! against its CPU reference (1e-5), and the Fisher scores the gating crate computes from
//! torch's gate against the same quantity in torch (1e-4 relative); and the devnet learner's
//! training step against the same step written in PyTorch (`bench/pytorch_step.py`), when a
//! Python with torch is found (skipped with the reason otherwise).

#[path = "common/python.rs"]
mod python;

use deepnode_gating::{GateInput, Noise, reference, standard_normal};
use deepnode_node::Model;
use deepnode_torch::baseline::Fixture;
use deepnode_torch::data::TextCorpus;
use deepnode_torch::{
    EncoderConfig, FisherBackend, LocalConfig, LocalModel, ServeConfig, TorchModel, gating,
};
use deepnode_wire::Modality;
use tch::{Kind, Tensor};

fn t2(v: &[f32], rows: usize, cols: usize) -> Tensor {
    Tensor::from_slice(v).view([rows as i64, cols as i64])
}

fn vec(t: &Tensor) -> Vec<f32> {
    Vec::try_from(t.detach().contiguous().view(-1)).unwrap()
}

fn close(got: &[f32], want: &[f32], tol: impl Fn(f32) -> f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        if w.is_nan() {
            assert!(g.is_nan(), "{what}[{i}]: {g} is not NaN");
        } else {
            assert!(
                (g - w).abs() <= tol(*w),
                "{what}[{i}]: torch {g} vs reference {w}"
            );
        }
    }
}

#[test]
fn noisy_top_k_gate_mixture_and_load_match_the_reference() {
    let (rows, d, peers) = (96, 12, 8);
    let x = standard_normal(1, rows * d);
    let w_gate: Vec<f32> = standard_normal(2, d * peers)
        .iter()
        .map(|v| v * 0.5)
        .collect();
    let w_noise: Vec<f32> = standard_normal(3, d * peers)
        .iter()
        .map(|v| v * 0.3)
        .collect();
    let eps = standard_normal(4, rows * peers);
    let input = GateInput {
        x: &x,
        w_gate: &w_gate,
        noise: Some(Noise {
            w_noise: &w_noise,
            eps: &eps,
        }),
        rows,
        d,
        peers,
    };
    let eps_t = t2(&eps, rows, peers);
    let logits = gating::logits(
        &t2(&x, rows, d),
        &t2(&w_gate, d, peers),
        &t2(&w_noise, d, peers),
        Some(&eps_t),
    );
    let h = reference::gating_logits(&input).unwrap();
    close(
        &vec(&logits.noisy),
        &h,
        |w| 1e-5 * (1.0 + w.abs()),
        "logits",
    );
    for k in [1, 2, 4, 8] {
        // Rank on the reference's logits so that near-ties cannot differ by rounding.
        let gate = gating::top_k_softmax(&t2(&h, rows, peers), k as i64).unwrap();
        let sel = reference::gating_forward(&input, k).unwrap();
        let ours = gate.selection(peers).unwrap();
        assert_eq!(ours.indices, sel.indices, "k = {k}: indices");
        close(&ours.gates, &sel.gates, |_| 1e-5, "gates");
        let responses = standard_normal(5 + k as u64, rows * k * d);
        let mixed = gating::combine(
            &gate.gates,
            &Tensor::from_slice(&responses).view([rows as i64, k as i64, d as i64]),
        );
        let want = reference::combine(&sel, &responses, d).unwrap();
        close(&vec(&mixed), &want, |_| 1e-5, "mixture");
        // Load balance on torch's own logits and gate.
        let gate = gating::top_k_softmax(&logits.noisy, k as i64).unwrap();
        assert_eq!(
            gate.selection(peers).unwrap().indices,
            sel.indices,
            "k = {k}: torch-logit indices"
        );
        let ours = gating::balance(&logits, &gate, k as i64);
        let lb = reference::load_balance(&input, k).unwrap();
        close(
            &vec(&ours.importance),
            &lb.importance,
            |w| 1e-5 * (1.0 + w.abs()),
            "importance",
        );
        close(
            &vec(&ours.load),
            &lb.load,
            |w| 1e-5 * rows as f32 + 1e-4 * w.abs(),
            "load",
        );
        close(
            &[ours.cv2_importance.double_value(&[]) as f32],
            &[lb.cv2_importance],
            |w| 1e-3 * (1.0 + w),
            "cv2 importance",
        );
        close(
            &[ours.cv2_load.double_value(&[]) as f32],
            &[lb.cv2_load],
            |w| 1e-3 * (1.0 + w),
            "cv2 load",
        );
    }
}

#[test]
fn ties_nan_and_infinities_follow_the_reference_rules() {
    let (inf, nan) = (f32::INFINITY, f32::NAN);
    let rows: Vec<[f32; 5]> = vec![
        [1.0, 3.0, 3.0, 3.0, 0.0],
        [nan, 1.0, 2.0, nan, -1.0],
        [inf, 1.0, inf, 2.0, inf],
        [-inf, -inf, -inf, -inf, -inf],
        [nan, nan, nan, nan, nan],
        [-0.0, 0.0, -0.0, 0.0, -1.0],
        [-inf, 1.0, -inf, -inf, -inf],
        [2.0, nan, inf, -inf, 2.0],
    ];
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    for k in 1..=5 {
        let gate = gating::top_k_softmax(&t2(&flat, rows.len(), 5), k as i64).unwrap();
        let sel = reference::top_k_softmax(&flat, rows.len(), 5, k).unwrap();
        let ours = gate.selection(5).unwrap();
        assert_eq!(ours.indices, sel.indices, "k = {k}");
        close(&ours.gates, &sel.gates, |_| 1e-6, "gates");
    }
}

#[test]
fn fisher_scores_of_the_gating_crate_equal_the_torch_definition() {
    let config = LocalConfig {
        peers: 4,
        k: 2,
        ..LocalConfig::default()
    };
    let mut node = LocalModel::new(config).unwrap();
    let peers: Vec<TorchModel> = (0..4)
        .map(|j| TorchModel::new(20 + j, EncoderConfig::default(), ServeConfig::default()).unwrap())
        .collect();
    let corpus = TextCorpus::system_shard(1, 4).unwrap();
    // The mixing head starts at zero (every score 0): a few steps give it weight.
    for step in 0..3 {
        node.step(&corpus.train_batch(4, 24, step), &mut |j, x| {
            peers[j].forward(Modality::Text, x).ok()
        })
        .unwrap();
    }
    let batch = corpus.train_batch(4, 24, 9);
    let routed = node.route(&batch, true).unwrap();
    let wire = deepnode_torch::convert::tokens_to_node(&routed.inputs).unwrap();
    let responses: Vec<Tensor> = (0..4)
        .map(|j| {
            deepnode_torch::convert::to_tch(&peers[j].forward(Modality::Text, &wire).unwrap())
                .unwrap()
        })
        .collect();
    let loss = node.loss(&routed, &responses).unwrap();
    let torch = node.fisher_torch(&routed, &loss).unwrap();
    let mut backends = vec![("cpu reference", FisherBackend::Cpu)];
    if let FisherBackend::Gpu(gpu) = FisherBackend::detect() {
        backends.push(("wgpu", FisherBackend::Gpu(gpu)));
    }
    for (name, backend) in backends {
        node.set_fisher_backend(backend);
        let scores = node.fisher_gating(&routed, &loss).unwrap();
        assert!(
            torch.iter().any(|&s| s > 0.0),
            "some peer matters: {torch:?}"
        );
        for (j, (g, t)) in scores.iter().zip(&torch).enumerate() {
            let rel = (f64::from(*g) - t).abs() / t.abs().max(1e-12);
            assert!(
                rel <= 1e-4,
                "{name}: peer {j}: gating {g} vs torch {t} (rel {rel:e})"
            );
        }
    }
}

/// The devnet learner's model (8 peers, the learner's defaults).
fn learner_config() -> LocalConfig {
    LocalConfig {
        peers: 8,
        ..deepnode_torch::LearnerConfig::default().local
    }
}

#[test]
fn the_pytorch_baseline_takes_the_same_steps() {
    let (python, version) = match python::with_torch() {
        Ok(found) => found,
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    let config = learner_config();
    let peers: Vec<TorchModel> = (0..8)
        .map(|j| TorchModel::new(10 + j, EncoderConfig::default(), ServeConfig::default()).unwrap())
        .collect();
    let models: Vec<&dyn Model> = peers.iter().map(|p| p as &dyn Model).collect();
    let corpus = TextCorpus::system_shard(0, 4).unwrap();
    // Three steps: the first trains the mixing matrix away from zero (every Fisher score and
    // benefit is 0 before), the next two score the peers and carry Adam's moments.
    let fixture = Fixture::new(config, &corpus, 4, 32, 3, &models).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("fixture"), dir.path().join("pytorch"));
    let mut model = LocalModel::new(config).unwrap();
    fixture.write(&model, &input).unwrap();
    let ours = fixture.run(&mut model).unwrap();
    let status = std::process::Command::new(&python)
        .arg(python::script())
        .arg("check")
        .args([&input, &output])
        .status()
        .unwrap();
    assert!(status.success(), "{} check failed", python.display());
    let theirs: std::collections::HashMap<String, Tensor> = deepnode_torch::baseline::read(&output)
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(ours.len(), theirs.len(), "the same results by name");
    // Per result: |tch - PyTorch| <= tol * max(|PyTorch|) over the tensor, f64.
    let tolerance = |name: &str| {
        if name.starts_with("loss.") {
            1e-5
        } else {
            1e-4
        }
    };
    let mut worst = std::collections::BTreeMap::<String, f64>::new();
    for (name, t) in &ours {
        let want = theirs
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing from PyTorch's results"));
        assert_eq!(t.size(), want.size(), "{name}: shape");
        let (t, want) = (t.to_kind(Kind::Double), want.to_kind(Kind::Double));
        let scale = want.abs().max().double_value(&[]).max(1e-12);
        let diff = (&t - &want).abs().max().double_value(&[]) / scale;
        assert!(
            diff <= tolerance(name),
            "{name}: tch vs PyTorch {version} differ by {diff:e} of its largest value"
        );
        let group = name.split('.').next().unwrap_or(name).to_owned();
        let w = worst.entry(group).or_default();
        *w = w.max(diff);
    }
    println!("PyTorch {version}: largest difference per result, relative to its scale: {worst:?}");
    let fisher: Vec<f32> = Vec::try_from(&theirs["fisher.2"]).unwrap();
    assert!(
        fisher.iter().any(|&f| f > 0.0),
        "some peer matters: {fisher:?}"
    );
}
