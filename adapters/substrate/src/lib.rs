//! The node's access to a Substrate chain whose runtime runs pallet-deepnode (the runtime of
//! `adapters/runtime`, under chopsticks or a Substrate node), through subxt's dynamic,
//! metadata-driven API: [`SubstrateChain`] implements the node's [`LedgerAccess`].
//!
//! On connecting it checks the runtime's metadata for the pallet, its calls and the metagraph
//! runtime API this client encodes and decodes, so a wrong chain or another version fails at
//! once with a one-line [`ChainError`] rather than at the first call. The node signs with its
//! ed25519 key: its chain account is that public key.

mod error;
mod metagraph;
mod signer;

pub use error::ChainError;
pub use metagraph::{METAGRAPH_FIELDS, Metagraph, NEURON_FIELDS, Neuron};
pub use signer::Ed25519Signer;

use deepnode_ledger_client::{AccountId, Call, MetagraphView, Wallet};
use deepnode_node::NodeError;
use deepnode_node::access::LedgerAccess;
use parity_scale_codec::DecodeAll;
use subxt::config::SubstrateConfig;
use subxt::dynamic::Value;
use subxt::metadata::Metadata;
use subxt::transactions::{DynamicPayload, Payload, Signer};
use subxt::utils::{AccountId32, MultiAddress};
use subxt::{OnlineClient, dynamic};

/// The pallet's name in the runtime.
pub const PALLET: &str = "DeepNode";
/// The pallet's calls this client sends, with their argument names in order.
pub const CALLS: [(&str, &[&str]); 5] = [
    ("register", &[]),
    ("add_stake", &["uid", "amount"]),
    ("remove_stake", &["uid", "amount"]),
    ("set_weights", &["uid", "weights"]),
    ("serve", &["uid", "endpoint", "modality"]),
];

/// A Substrate chain running pallet-deepnode, acting for one ed25519 key.
pub struct SubstrateChain {
    api: OnlineClient<SubstrateConfig>,
    signer: Ed25519Signer,
}

impl SubstrateChain {
    /// Connects to `url` (`ws://` or `wss://`) and checks the runtime's metadata (see the
    /// crate docs); `wallet` signs this node's calls.
    pub async fn connect(url: &str, wallet: &Wallet) -> Result<SubstrateChain, ChainError> {
        let api = OnlineClient::<SubstrateConfig>::from_insecure_url(url)
            .await
            .map_err(|e| ChainError::Unreachable {
                url: url.to_owned(),
                reason: one_line(&e),
            })?;
        let at = api.at_current_block().await.map_err(rpc)?;
        check_metadata(&at.metadata(), url)?;
        Ok(SubstrateChain {
            api,
            signer: Ed25519Signer(wallet.key().clone()),
        })
    }

    /// This client's account on the chain.
    pub fn account(&self) -> AccountId {
        AccountId(self.signer.account_id().0)
    }

    /// The free balance of `who` at the latest block.
    pub async fn free_balance(&self, who: AccountId) -> Result<u128, ChainError> {
        #[derive(Debug, subxt::ext::scale_decode::DecodeAsType)]
        #[decode_as_type(crate_path = "subxt::ext::scale_decode")]
        struct AccountInfo {
            data: AccountData,
        }
        #[derive(Debug, subxt::ext::scale_decode::DecodeAsType)]
        #[decode_as_type(crate_path = "subxt::ext::scale_decode")]
        struct AccountData {
            free: u128,
        }
        let at = self.api.at_current_block().await.map_err(rpc)?;
        let addr = dynamic::storage::<([u8; 32],), AccountInfo>("System", "Account");
        let info = at.storage().try_fetch(addr, (who.0,)).await.map_err(rpc)?;
        match info {
            Some(v) => Ok(v
                .decode()
                .map_err(|e| ChainError::Metadata(one_line(&e)))?
                .data
                .free),
            None => Ok(0),
        }
    }

    /// Signs `payload` with `signer`, submits it and waits until a finalized block holds it
    /// and its dispatch succeeded: that block's number.
    pub async fn send(
        &self,
        call: &'static str,
        payload: impl Payload,
        signer: &impl Signer<SubstrateConfig>,
    ) -> Result<u64, ChainError> {
        let refused = |reason: String| ChainError::Refused { call, reason };
        let at = self.api.at_current_block().await.map_err(rpc)?;
        let progress = at
            .transactions()
            .sign_and_submit_then_watch_default(&payload, signer)
            .await
            .map_err(|e| refused(one_line(&e)))?;
        let in_block = progress
            .wait_for_finalized()
            .await
            .map_err(|e| refused(one_line(&e)))?;
        in_block
            .wait_for_success()
            .await
            .map_err(|e| refused(one_line(&e)))?;
        let block = self
            .api
            .at_block(in_block.block_hash())
            .await
            .map_err(rpc)?;
        Ok(block.block_number())
    }

    /// Moves `amount` from `from`'s free balance to `to` (`Balances.transfer_keep_alive`),
    /// e.g. from a dev account to a node's fresh account.
    pub async fn transfer(
        &self,
        from: &impl Signer<SubstrateConfig>,
        to: AccountId,
        amount: u128,
    ) -> Result<u64, ChainError> {
        let dest = MultiAddress::<AccountId32, ()>::Id(AccountId32(to.0));
        let payload = dynamic::transaction("Balances", "transfer_keep_alive", (dest, amount));
        self.send("Balances.transfer_keep_alive", payload, from)
            .await
    }

    /// The metagraph at the latest block (`DeepNodeApi_metagraph`).
    pub async fn metagraph(&self) -> Result<Metagraph, ChainError> {
        let at = self.api.at_current_block().await.map_err(rpc)?;
        let bytes = at
            .runtime_apis()
            .call_raw("DeepNodeApi_metagraph", None)
            .await
            .map_err(rpc)?;
        Metagraph::decode_all(&mut bytes.as_slice())
            .map_err(|e| ChainError::Metadata(format!("DeepNodeApi_metagraph's answer: {e}")))
    }
}

/// The dynamic payload of `call`, and the pallet call's name.
fn payload(call: Call) -> (&'static str, DynamicPayload<Vec<Value>>) {
    let tx =
        |name: &'static str, args: Vec<Value>| (name, dynamic::transaction(PALLET, name, args));
    match call {
        Call::Register => tx("register", vec![]),
        Call::AddStake { uid, amount } => tx("add_stake", vec![uid.into(), amount.into()]),
        Call::RemoveStake { uid, amount } => tx("remove_stake", vec![uid.into(), amount.into()]),
        Call::SetWeights { uid, weights } => {
            let row = weights
                .into_iter()
                .map(|(j, w)| Value::unnamed_composite([j.into(), w.into()]))
                .collect::<Vec<_>>();
            tx(
                "set_weights",
                vec![uid.into(), Value::unnamed_composite(row)],
            )
        }
        Call::Serve {
            uid,
            endpoint,
            modality,
        } => tx(
            "serve",
            vec![uid.into(), Value::from_bytes(endpoint), modality.into()],
        ),
        Call::Transfer { to, amount } => (
            "Balances.transfer_keep_alive",
            dynamic::transaction(
                "Balances",
                "transfer_keep_alive",
                vec![
                    Value::unnamed_variant("Id", [Value::from_bytes(to.0)]),
                    u128::from(amount).into(),
                ],
            ),
        ),
    }
}

impl LedgerAccess for SubstrateChain {
    async fn genesis_hash(&self) -> Result<[u8; 32], NodeError> {
        Ok(self.api.genesis_hash().0)
    }

    async fn metagraph(&self) -> Result<MetagraphView, NodeError> {
        Ok(SubstrateChain::metagraph(self).await?.view())
    }

    async fn submit(&self, call: Call) -> Result<u64, NodeError> {
        // Checked first: the pool's own refusal does not say whose balance is short.
        if self.free_balance(self.account()).await? == 0 {
            return Err(ChainError::NoFunds {
                account: self.account().to_string(),
            }
            .into());
        }
        let (name, payload) = payload(call);
        Ok(self.send(name, payload, &self.signer).await?)
    }
}

/// Refuses metadata without the pallet, one of [`CALLS`] with its arguments, or the
/// metagraph API with the fields [`Metagraph`] decodes.
fn check_metadata(metadata: &Metadata, url: &str) -> Result<(), ChainError> {
    let pallet = metadata
        .pallet_by_name(PALLET)
        .ok_or_else(|| ChainError::NoPallet {
            url: url.to_owned(),
        })?;
    for (name, args) in CALLS {
        let variant = pallet
            .call_variant_by_name(name)
            .ok_or_else(|| ChainError::Metadata(format!("no call {PALLET}.{name}")))?;
        let have: Vec<&str> = variant
            .fields
            .iter()
            .filter_map(|f| f.name.as_deref())
            .collect();
        if have != args {
            return Err(ChainError::Metadata(format!(
                "{PALLET}.{name} takes {have:?}, this client sends {args:?}"
            )));
        }
    }
    let method = metadata
        .runtime_api_trait_by_name("DeepNodeApi")
        .and_then(|t| t.method_by_name("metagraph").map(|m| m.output_ty()))
        .ok_or_else(|| ChainError::Metadata("no runtime API DeepNodeApi.metagraph".into()))?;
    let fields = |ty: u32| -> Vec<String> {
        match metadata.types().resolve(ty).map(|t| &t.type_def) {
            Some(scale_info::TypeDef::Composite(c)) => {
                c.fields.iter().filter_map(|f| f.name.clone()).collect()
            }
            _ => Vec::new(),
        }
    };
    if fields(method) != METAGRAPH_FIELDS {
        return Err(ChainError::Metadata(format!(
            "DeepNodeApi.metagraph returns fields {:?}, this client decodes {METAGRAPH_FIELDS:?}",
            fields(method)
        )));
    }
    Ok(())
}

fn rpc(e: impl std::error::Error) -> ChainError {
    ChainError::Rpc(one_line(&e))
}

/// An error and its sources on one line.
fn one_line(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(cause) = src {
        let c = cause.to_string();
        if !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
        src = cause.source();
    }
    s.replace('\n', " ")
}
