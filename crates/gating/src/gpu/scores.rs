//! Per-peer sums over a batch: the gate's mass, the Fisher scores and the load-balancing terms.

use super::*;

impl Gpu {
    /// GPU twin of [`reference::gate_mass`]: mean gate mass per peer, `[peers]`.
    pub fn gate_mass(&self, sel: &Selection) -> Result<Vec<f32>, GatingError> {
        sel.validate()?;
        let sums = self.per_peer_sums(sel, &[], |_, _, _, _| Ok(None))?;
        Ok(reference::mean_over_rows(sums, sel.rows))
    }

    /// GPU twin of [`reference::fisher_scores`]: `r_i = mean_x dF_i^T H dF_i`, `[peers]`.
    pub fn fisher_scores(
        &self,
        sel: &Selection,
        responses: &[f32],
        d_out: usize,
        head: &FisherHead<'_>,
    ) -> Result<Vec<f32>, GatingError> {
        sel.validate()?;
        check_responses(sel, responses, d_out)?;
        head.validate(sel.rows, d_out)?;
        let k = sel.k;
        self.check_fixed("head.weights", head.weights.len())?;
        let weights = self.storage("head", head.weights);
        let dims = [
            to_u32("k", k)?,
            to_u32("d_out", d_out)?,
            to_u32("classes", head.classes)?,
        ];
        let extra = [
            ("responses row", 4 * (k * d_out) as u64),
            ("probs row", 4 * head.classes as u64),
        ];
        let sums = self.per_peer_sums(sel, &extra, |gpu, enc, r0, n| {
            let params = gpu.params([to_u32("rows", n)?, dims[0], dims[1], dims[2]]);
            let gates = gpu.storage("gates", &sel.gates[r0 * k..(r0 + n) * k]);
            let resp = gpu.storage(
                "responses",
                &responses[r0 * k * d_out..(r0 + n) * k * d_out],
            );
            let probs = gpu.storage(
                "probs",
                &head.probs[r0 * head.classes..(r0 + n) * head.classes],
            );
            let terms = gpu.output("terms", n * k);
            gpu.dispatch(
                enc,
                &gpu.fisher,
                &[&params, &gates, &resp, &weights, &probs, &terms],
                (groups_of(n * k), 1),
            );
            Ok(Some(terms))
        })?;
        Ok(reference::mean_over_rows(sums, sel.rows))
    }

    /// GPU twin of [`reference::load_balance`]: importance, smooth load and their `CV^2`
    /// (the `CV^2` of the two `[peers]` vectors is taken on the host with
    /// [`reference::cv_squared`]).
    pub fn load_balance(
        &self,
        input: &GateInput<'_>,
        k: usize,
    ) -> Result<LoadBalance, GatingError> {
        input.validate()?;
        check_k(k, input.peers)?;
        let peers = input.peers;
        let col_groups = self.groups_checked("peers", peers)?;
        let weights = self.gate_weights(input)?;
        let row = 4 * peers as u64;
        let chunk = self.gate_chunk(input, &[("indices row", 4 * k as u64), ("dense row", row)])?;
        let mut importance = vec![0.0f32; peers];
        let mut load = vec![0.0f32; peers];
        for r0 in (0..input.rows).step_by(chunk) {
            let n = chunk.min(input.rows - r0);
            let n32 = n as u32;
            let scope = self.scope();
            let mut enc = self.encoder();
            let l = self.encode_logits(&mut enc, input, &weights, r0, n, true)?;
            let t = self.encode_top_k(&mut enc, &l.logits, n, peers, k, true)?;
            let noisy = u32::from(input.noise.is_some());
            let params = self.params([n32, peers as u32, k as u32, noisy]);
            let prob = self.output("prob", n * peers);
            self.dispatch(
                &mut enc,
                &self.load,
                &[
                    &params,
                    &l.logits,
                    &l.clean,
                    &l.sd,
                    &t.indices,
                    &t.thresholds,
                    &prob,
                ],
                (col_groups, n32),
            );
            let dense = self.output("dense gates", n * peers);
            let sp = self.params([n32, k as u32, peers as u32, 0]);
            self.dispatch(
                &mut enc,
                &self.scatter,
                &[&sp, &t.indices, &t.gates, &dense],
                (groups_of(n), 1),
            );
            let cp = self.params([n32, peers as u32, 0, 0]);
            let imp = self.output("importance", peers);
            let lod = self.output("load", peers);
            self.dispatch(
                &mut enc,
                &self.column_sum,
                &[&cp, &dense, &imp],
                (col_groups, 1),
            );
            self.dispatch(
                &mut enc,
                &self.column_sum,
                &[&cp, &prob, &lod],
                (col_groups, 1),
            );
            let [i, l] = self.read(enc, [&imp, &lod], scope)?;
            for (acc, v) in importance
                .iter_mut()
                .zip(bytemuck::cast_slice::<u8, f32>(&i))
            {
                *acc += *v;
            }
            for (acc, v) in load.iter_mut().zip(bytemuck::cast_slice::<u8, f32>(&l)) {
                *acc += *v;
            }
        }
        Ok(LoadBalance {
            cv2_importance: reference::cv_squared(&importance),
            cv2_load: reference::cv_squared(&load),
            importance,
            load,
        })
    }

    // ---- chunk planning -------------------------------------------------------------------

    /// Sums per peer, over all rows, of per-slot values: the gates when `values` returns
    /// `None`, else the buffer it encodes for rows `r0..r0 + n`. Scatter then column sum on the
    /// device; chunks are added on the host.
    pub(super) fn per_peer_sums<F>(
        &self,
        sel: &Selection,
        extra: &[(&'static str, u64)],
        values: F,
    ) -> Result<Vec<f32>, GatingError>
    where
        F: Fn(
            &Self,
            &mut wgpu::CommandEncoder,
            usize,
            usize,
        ) -> Result<Option<wgpu::Buffer>, GatingError>,
    {
        let (k, peers) = (sel.k, sel.peers);
        to_u32("rows", sel.rows)?;
        let col_groups = self.groups_checked("peers", peers)?;
        let mut per_row = vec![
            ("dense row", 4 * peers as u64),
            ("indices row", 4 * k as u64),
        ];
        per_row.extend_from_slice(extra);
        // The per-slot kernels dispatch rows * k invocations along x.
        let chunk = self
            .rows_per_chunk(&per_row)?
            .min((u64::from(self.max_groups) * WG / k as u64).max(1) as usize);
        let mut sums = vec![0.0f32; peers];
        for r0 in (0..sel.rows).step_by(chunk) {
            let n = chunk.min(sel.rows - r0);
            let scope = self.scope();
            let mut enc = self.encoder();
            let vals = match values(self, &mut enc, r0, n)? {
                Some(buffer) => buffer,
                None => self.storage("gates", &sel.gates[r0 * k..(r0 + n) * k]),
            };
            let indices = self.storage("indices", &sel.indices[r0 * k..(r0 + n) * k]);
            let dense = self.output("dense", n * peers);
            let sp = self.params([n as u32, k as u32, peers as u32, 0]);
            self.dispatch(
                &mut enc,
                &self.scatter,
                &[&sp, &indices, &vals, &dense],
                (groups_of(n), 1),
            );
            let cp = self.params([n as u32, peers as u32, 0, 0]);
            let out = self.output("sums", peers);
            self.dispatch(
                &mut enc,
                &self.column_sum,
                &[&cp, &dense, &out],
                (col_groups, 1),
            );
            let [s] = self.read(enc, [&out], scope)?;
            for (acc, v) in sums.iter_mut().zip(bytemuck::cast_slice::<u8, f32>(&s)) {
                *acc += *v;
            }
        }
        Ok(sums)
    }

    // ---- wgpu plumbing --------------------------------------------------------------------
}
