//! Storage types and the precision modes (README.md, "The model and the precision modes").

use half::{bf16, f16};

/// How one tensor is stored on the GPU and how writes to it are rounded.
/// 16-bit types are packed two per u32 (element 2j low half, 2j+1 high half).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Store {
    F32,
    /// bf16, written with round-to-nearest-even
    Bf16,
    /// bf16, written with stochastic rounding
    Bf16Sr,
    /// IEEE half, written with round-to-nearest-even
    F16,
}

impl Store {
    /// The shader template this storage instantiates (`shaders/lib/tensor_<name>.wgsl`), and
    /// the name the shader assembler accepts in `#tensor` lines.
    pub fn wgsl_name(self) -> &'static str {
        match self {
            Store::F32 => "f32",
            Store::Bf16 => "bf16",
            Store::Bf16Sr => "bf16_sr",
            Store::F16 => "f16",
        }
    }

    /// The same storage as a read-only operand: rounding only matters to writers, so bf16 and
    /// bf16 with SR read alike and share a compiled pipeline.
    pub fn for_reading(self) -> Store {
        if self == Store::Bf16Sr {
            Store::Bf16
        } else {
            self
        }
    }

    pub fn is_packed(self) -> bool {
        self != Store::F32
    }

    pub fn bytes_per_element(self) -> usize {
        if self.is_packed() {
            2
        } else {
            4
        }
    }

    /// Bytes of a GPU buffer holding `n` elements (16-bit storage rounds up to whole u32s).
    pub fn buffer_bytes(self, n: usize) -> u64 {
        if self.is_packed() {
            n.div_ceil(2) as u64 * 4
        } else {
            n as u64 * 4
        }
    }

    /// Encodes f32 values into this storage's bytes on the CPU, rounding to nearest even
    /// (stochastic rounding happens only on the GPU).
    pub fn encode(self, values: &[f32]) -> Vec<u8> {
        match self {
            Store::F32 => bytemuck::cast_slice(values).to_vec(),
            Store::Bf16 | Store::Bf16Sr => {
                let mut half: Vec<bf16> = values.iter().map(|&x| bf16::from_f32(x)).collect();
                if half.len() % 2 == 1 {
                    half.push(bf16::ZERO);
                }
                bytemuck::cast_slice(&half).to_vec()
            }
            Store::F16 => {
                let mut half: Vec<f16> = values.iter().map(|&x| f16::from_f32(x)).collect();
                if half.len() % 2 == 1 {
                    half.push(f16::ZERO);
                }
                bytemuck::cast_slice(&half).to_vec()
            }
        }
    }

    /// Decodes `n` elements of this storage from bytes into f32.
    pub fn decode(self, bytes: &[u8], n: usize) -> Vec<f32> {
        match self {
            Store::F32 => bytemuck::cast_slice::<u8, f32>(&bytes[..n * 4]).to_vec(),
            Store::Bf16 | Store::Bf16Sr => bytes[..n * 2].chunks_exact(2).map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            Store::F16 => bytes[..n * 2].chunks_exact(2).map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        }
    }

    /// What a value becomes once stored with round-to-nearest (identity for f32).
    pub fn round_rtn(self, x: f32) -> f32 {
        match self {
            Store::F32 => x,
            Store::Bf16 | Store::Bf16Sr => bf16::from_f32(x).to_f32(),
            Store::F16 => f16::from_f32(x).to_f32(),
        }
    }
}

/// The training precision modes (names fixed by the CLI).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Precision {
    Fp32,
    Mixed,
    Bf16,
    Bf16Sr,
}

impl Precision {
    pub const ALL: [Precision; 4] = [Precision::Fp32, Precision::Mixed, Precision::Bf16, Precision::Bf16Sr];

    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Mixed => "mixed",
            Precision::Bf16 => "bf16",
            Precision::Bf16Sr => "bf16-sr",
        }
    }

    pub fn parse(s: &str) -> Option<Precision> {
        Precision::ALL.into_iter().find(|p| p.name() == s.trim())
    }

    /// Weights as the forward pass reads them, and how the optimizer writes them.
    pub fn param_store(self) -> Store {
        match self {
            Precision::Fp32 => Store::F32,
            Precision::Mixed | Precision::Bf16 => Store::Bf16,
            Precision::Bf16Sr => Store::Bf16Sr,
        }
    }

    /// Parameter gradients (rounded to nearest in every 16-bit mode: SR is the optimizer's).
    pub fn grad_store(self) -> Store {
        match self {
            Precision::Fp32 | Precision::Mixed => Store::F32,
            Precision::Bf16 | Precision::Bf16Sr => Store::Bf16,
        }
    }

    /// Adam's m and v.
    pub fn state_store(self) -> Store {
        match self {
            Precision::Fp32 | Precision::Mixed => Store::F32,
            Precision::Bf16 => Store::Bf16,
            Precision::Bf16Sr => Store::Bf16Sr,
        }
    }

    /// Activations saved for the backward pass, and the matmul inputs of the forward.
    pub fn act_store(self) -> Store {
        match self {
            Precision::Fp32 => Store::F32,
            _ => Store::Bf16,
        }
    }

    pub fn has_master(self) -> bool {
        self == Precision::Mixed
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
