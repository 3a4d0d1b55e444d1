//! The one-byte and two-byte codes of a header: what a message is, its modality, its element
//! type and its status.

use crate::WireError;

macro_rules! code_enum {
    ($(#[$doc:meta])* $name:ident : $repr:ty, $field:literal { $($(#[$vdoc:meta])* $variant:ident = $value:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr($repr)]
        pub enum $name {
            $($(#[$vdoc])* $variant = $value,)+
        }

        impl $name {
            /// Every value, in code order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The code on the wire.
            pub fn code(self) -> $repr {
                self as $repr
            }

            /// The value of `code`, if any.
            pub fn from_code(code: $repr) -> Result<$name, WireError> {
                match code {
                    $($value => Ok($name::$variant),)+
                    other => Err(WireError::UnknownCode { field: $field, value: u16::from(other) }),
                }
            }
        }
    };
}

code_enum! {
    /// What a message is.
    Kind: u8, "kind" {
        /// Inputs for the peer's model; answered by a Response or an Error.
        Forward = 1,
        /// Inputs and the gradient of the caller's loss with respect to the peer's response;
        /// not answered (fire and forget).
        Backward = 2,
        /// A model's output `[B, S, dim]`.
        Response = 3,
        /// A refusal: `status` says why; no body.
        Error = 4,
    }
}

code_enum! {
    /// What the inputs are.
    Modality: u8, "modality" {
        /// Text: token bytes `[B, S]` as i64.
        Text = 0,
        /// Images `[B, C, H, W]`.
        Image = 1,
        /// Speech features `[B, S, F]`.
        Speech = 2,
        /// Float features `[B, S, F]`.
        Tensor = 3,
    }
}

code_enum! {
    /// The element type of a tensor body.
    DType: u8, "dtype" {
        /// IEEE binary32.
        F32 = 0,
        /// bfloat16 (the top half of an f32).
        Bf16 = 1,
        /// IEEE binary16.
        F16 = 2,
        /// Signed 64-bit integer.
        I64 = 3,
    }
}

code_enum! {
    /// The outcome a message reports (an Error's reason; 0 on everything else).
    Status: u16, "status" {
        /// No error.
        Ok = 0,
        /// The server is at its concurrency limit; try later.
        Busy = 1,
        /// The caller is not in the metagraph, or under the stake floor.
        Unauthorized = 2,
        /// The server does not serve this modality.
        UnservedModality = 3,
        /// The payload is over the server's cap.
        TooLarge = 4,
        /// The shape is outside the server's limits.
        BadShape = 5,
        /// The inputs hold NaN or infinite values.
        NotFinite = 6,
        /// The deadline passed before the model ran.
        DeadlineExpired = 7,
        /// The model refused or failed.
        ModelFailed = 8,
        /// The header was malformed.
        Malformed = 9,
        /// The wire version is not the server's.
        BadVersion = 10,
    }
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> u64 {
        match self {
            DType::F32 => 4,
            DType::Bf16 | DType::F16 => 2,
            DType::I64 => 8,
        }
    }
}

impl Modality {
    /// The lowercase name (`text`, `image`, `speech`, `tensor`), as the ledger's metagraph and
    /// the command line write it.
    pub fn name(self) -> &'static str {
        match self {
            Modality::Text => "text",
            Modality::Image => "image",
            Modality::Speech => "speech",
            Modality::Tensor => "tensor",
        }
    }

    /// The modality [`Modality::name`] calls `name`, if any.
    pub fn from_name(name: &str) -> Option<Modality> {
        Modality::ALL.iter().copied().find(|m| m.name() == name)
    }
}
