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
        match self {
            Store::Bf16Sr => Store::Bf16,
            Store::F32 | Store::Bf16 | Store::F16 => self,
        }
    }

    /// Whether elements are 16-bit, packed two to a u32.
    pub fn is_packed(self) -> bool {
        match self {
            Store::F32 => false,
            Store::Bf16 | Store::Bf16Sr | Store::F16 => true,
        }
    }

    /// The safetensors dtype a checkpoint or an export stores this storage's values as.
    pub fn dtype(self) -> safetensors::Dtype {
        match self {
            Store::F32 => safetensors::Dtype::F32,
            Store::Bf16 | Store::Bf16Sr => safetensors::Dtype::BF16,
            Store::F16 => safetensors::Dtype::F16,
        }
    }

    /// The same type as PyTorch names it (an export's `torch_dtype`).
    pub fn torch_name(self) -> &'static str {
        match self {
            Store::F32 => "float32",
            Store::Bf16 | Store::Bf16Sr => "bfloat16",
            Store::F16 => "float16",
        }
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

    /// The storage a shader template is named by (the inverse of [`Store::wgsl_name`]).
    pub fn from_wgsl_name(name: &str) -> Option<Store> {
        Store::ALL.into_iter().find(|s| s.wgsl_name() == name)
    }

    pub const ALL: [Store; 4] = [Store::F32, Store::Bf16, Store::Bf16Sr, Store::F16];

    /// Encodes f32 values into this storage's bytes on the CPU, rounding to nearest even
    /// (stochastic rounding happens only on the GPU).
    pub fn encode(self, values: &[f32]) -> Vec<u8> {
        match self {
            Store::F32 => bytemuck::cast_slice(values).to_vec(),
            Store::Bf16 | Store::Bf16Sr => {
                let mut half: Vec<u16> = values.iter().map(|&x| bf16_bits_rtn(x)).collect();
                if half.len() % 2 == 1 {
                    half.push(0);
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

    /// What a value becomes once stored with round-to-nearest (identity for f32), whatever
    /// the storage's own rounding: how initial weights and CPU uploads are written.
    pub fn round_rtn(self, x: f32) -> f32 {
        match self {
            Store::F32 => x,
            Store::Bf16 | Store::Bf16Sr => bf16_bits_to_f32(bf16_bits_rtn(x)),
            Store::F16 => f16::from_f32(x).to_f32(),
        }
    }

    /// What a value becomes once the GPU writes it into this storage as element `index` of
    /// the tensor keyed by `key` = (step, tensor id ^ seed): round to nearest, or for
    /// `Bf16Sr` stochastic rounding with the same PCG bits as the shaders. The one CPU
    /// rounding every reference uses.
    pub fn round(self, x: f32, index: u32, key: [u32; 2]) -> f32 {
        match self {
            Store::Bf16Sr => bf16_sr(x, index, key),
            Store::F32 | Store::Bf16 | Store::F16 => self.round_rtn(x),
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
    /// bf16 weights with a bf16 compensation term (Kahan summation, Zamirai et al. 2020)
    Bf16Kahan,
}

/// A second tensor of weights the optimizer keeps beside the ones the forward reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeptExtra {
    /// fp32 master weights; the bf16 weights are their round-to-nearest copy (mixed)
    Master,
    /// bf16 compensation c: the kept weight is p + c, and the update writes p' = RTN(w),
    /// c' = RTN(w - p') (bf16-kahan)
    Compensation,
}

impl KeptExtra {
    pub fn store(self) -> Store {
        match self {
            KeptExtra::Master => Store::F32,
            KeptExtra::Compensation => Store::Bf16,
        }
    }

    /// What it is called in messages and buffer labels.
    pub fn label(self) -> &'static str {
        match self {
            KeptExtra::Master => "master weights",
            KeptExtra::Compensation => "compensation",
        }
    }

    /// The prefix of its tensors' names in a checkpoint (`master.h.0.mlp.c_fc.weight`).
    pub fn prefix(self) -> &'static str {
        match self {
            KeptExtra::Master => "master.",
            KeptExtra::Compensation => "compensation.",
        }
    }
}

impl Precision {
    pub const ALL: [Precision; 5] = [Precision::Fp32, Precision::Mixed, Precision::Bf16, Precision::Bf16Sr, Precision::Bf16Kahan];

    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Mixed => "mixed",
            Precision::Bf16 => "bf16",
            Precision::Bf16Sr => "bf16-sr",
            Precision::Bf16Kahan => "bf16-kahan",
        }
    }

    pub fn parse(s: &str) -> Option<Precision> {
        Precision::ALL.into_iter().find(|p| p.name() == s.trim())
    }

    /// Weights as the forward pass reads them, and how the optimizer writes them.
    pub fn param_store(self) -> Store {
        match self {
            Precision::Fp32 => Store::F32,
            Precision::Mixed | Precision::Bf16 | Precision::Bf16Kahan => Store::Bf16,
            Precision::Bf16Sr => Store::Bf16Sr,
        }
    }

    /// Parameter gradients (rounded to nearest in every 16-bit mode: SR is the optimizer's).
    pub fn grad_store(self) -> Store {
        match self {
            Precision::Fp32 | Precision::Mixed => Store::F32,
            Precision::Bf16 | Precision::Bf16Sr | Precision::Bf16Kahan => Store::Bf16,
        }
    }

    /// Adam's m and v.
    pub fn state_store(self) -> Store {
        match self {
            Precision::Fp32 | Precision::Mixed => Store::F32,
            Precision::Bf16 | Precision::Bf16Kahan => Store::Bf16,
            Precision::Bf16Sr => Store::Bf16Sr,
        }
    }

    /// Activations saved for the backward pass, and the matmul inputs of the forward.
    pub fn act_store(self) -> Store {
        match self {
            Precision::Fp32 => Store::F32,
            Precision::Mixed | Precision::Bf16 | Precision::Bf16Sr | Precision::Bf16Kahan => Store::Bf16,
        }
    }

    /// The weights kept beside the forward's: fp32 master weights or a compensation term.
    pub fn extra(self) -> Option<KeptExtra> {
        match self {
            Precision::Mixed => Some(KeptExtra::Master),
            Precision::Bf16Kahan => Some(KeptExtra::Compensation),
            Precision::Fp32 | Precision::Bf16 | Precision::Bf16Sr => None,
        }
    }

    /// The colour of the mode's curves, in the dashboard, `srgpt plot` and the sweep's picture.
    pub fn rgb(self) -> [u8; 3] {
        match self {
            Precision::Fp32 => [66, 133, 244],
            Precision::Mixed => [171, 71, 188],
            Precision::Bf16 => [234, 67, 53],
            Precision::Bf16Sr => [52, 168, 83],
            Precision::Bf16Kahan => [251, 140, 0],
        }
    }

    /// What the mode keeps, in a few words (the dashboard's tooltips, `--help`).
    pub fn label(self) -> &'static str {
        match self {
            Precision::Fp32 => "f32 weights, gradients and Adam state",
            Precision::Mixed => "bf16 weights and activations with an fp32 master copy",
            Precision::Bf16 => "pure bf16, round to nearest",
            Precision::Bf16Sr => "pure bf16, stochastic rounding in AdamW",
            Precision::Bf16Kahan => "bf16 weights with a bf16 Kahan compensation term",
        }
    }
}

/// `--precision fp32,bf16-sr`: the names and their help come from the table above.
impl clap::ValueEnum for Precision {
    fn value_variants<'a>() -> &'a [Self] {
        &Precision::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.name()).help(self.label()))
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

// The CPU side of shaders/lib/pcg.wgsl and shaders/lib/round.wgsl, bit for bit.

/// pcg3d as in shaders/lib/pcg.wgsl.
pub fn pcg3d(v: [u32; 3]) -> [u32; 3] {
    let mut v = v.map(|x| x.wrapping_mul(1664525).wrapping_add(1013904223));
    let mix = |v: &mut [u32; 3]| {
        v[0] = v[0].wrapping_add(v[1].wrapping_mul(v[2]));
        v[1] = v[1].wrapping_add(v[2].wrapping_mul(v[0]));
        v[2] = v[2].wrapping_add(v[0].wrapping_mul(v[1]));
    };
    mix(&mut v);
    v = v.map(|x| x ^ (x >> 16));
    mix(&mut v);
    v
}

/// The random bits of element `index` under key (step, tensor ^ seed).
pub fn random_bits(index: u32, key: [u32; 2]) -> u32 {
    pcg3d([index, key[0], key[1]])[0]
}

/// f32 -> bf16 bits, round to nearest even (NaN kept NaN), as `bf16_bits_rtn`.
pub fn bf16_bits_rtn(x: f32) -> u16 {
    let bits = x.to_bits();
    if bits & 0x7fff_ffff > 0x7f80_0000 {
        return ((bits >> 16) | 0x40) as u16;
    }
    (bits.wrapping_add(0x7fff + ((bits >> 16) & 1)) >> 16) as u16
}

/// f32 -> bf16 bits with stochastic rounding from `random` (Inf/NaN unchanged), as `bf16_bits_sr`.
pub fn bf16_bits_sr(x: f32, random: u32) -> u16 {
    let bits = x.to_bits();
    if bits & 0x7f80_0000 == 0x7f80_0000 {
        return bf16_bits_rtn(x);
    }
    (bits.wrapping_add(random & 0xffff) >> 16) as u16
}

pub fn bf16_bits_to_f32(b: u16) -> f32 {
    f32::from_bits((b as u32) << 16)
}

/// The value x takes when stored as bf16 with SR at element `index` under `key`.
pub fn bf16_sr(x: f32, index: u32, key: [u32; 2]) -> f32 {
    bf16_bits_to_f32(bf16_bits_sr(x, random_bits(index, key)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The mode table, row by row. The match has no wildcard, so a new mode does not compile
    /// until its row is written here, as every match over `Precision` in srgpt demands.
    #[test]
    fn every_mode_has_a_full_row_in_the_table() {
        for p in Precision::ALL {
            let (param, grad, state, act, extra, export) = match p {
                Precision::Fp32 => (Store::F32, Store::F32, Store::F32, Store::F32, None, "float32"),
                Precision::Mixed => (Store::Bf16, Store::F32, Store::F32, Store::Bf16, Some(KeptExtra::Master), "float32"),
                Precision::Bf16 => (Store::Bf16, Store::Bf16, Store::Bf16, Store::Bf16, None, "bfloat16"),
                Precision::Bf16Sr => (Store::Bf16Sr, Store::Bf16, Store::Bf16Sr, Store::Bf16, None, "bfloat16"),
                Precision::Bf16Kahan => (Store::Bf16, Store::Bf16, Store::Bf16, Store::Bf16, Some(KeptExtra::Compensation), "bfloat16"),
            };
            assert_eq!(
                (p.param_store(), p.grad_store(), p.state_store(), p.act_store(), p.extra()),
                (param, grad, state, act, extra),
                "{p}"
            );
            // what an export writes: mixed its fp32 master, the others the weights the forward reads
            let kept = match p.extra() {
                Some(KeptExtra::Master) => KeptExtra::Master.store(),
                Some(KeptExtra::Compensation) | None => p.param_store(),
            };
            assert_eq!(kept.torch_name(), export, "{p}");
            assert_eq!(Precision::parse(p.name()), Some(p), "{p}: the CLI name parses back");
            let value = clap::ValueEnum::to_possible_value(&p).expect("every mode is offered on the command line");
            assert_eq!(value.get_name(), p.name());
            assert!(!p.label().is_empty());
            let others = Precision::ALL.iter().filter(|&&q| q != p);
            assert!(others.clone().all(|q| q.rgb() != p.rgb()), "{p}: a colour of its own");
            assert!(others.clone().all(|q| q.name() != p.name()), "{p}: a name of its own");
        }
        assert_eq!(<Precision as clap::ValueEnum>::value_variants(), &Precision::ALL);
    }

    #[test]
    fn every_storage_has_a_full_row_in_the_table() {
        for s in Store::ALL {
            let (packed, read_as, dtype) = match s {
                Store::F32 => (false, Store::F32, safetensors::Dtype::F32),
                Store::Bf16 => (true, Store::Bf16, safetensors::Dtype::BF16),
                Store::Bf16Sr => (true, Store::Bf16, safetensors::Dtype::BF16),
                Store::F16 => (true, Store::F16, safetensors::Dtype::F16),
            };
            assert_eq!((s.is_packed(), s.for_reading(), s.dtype()), (packed, read_as, dtype), "{s:?}");
            assert_eq!(Store::from_wgsl_name(s.wgsl_name()), Some(s));
            assert_eq!(s.bytes_per_element(), if packed { 2 } else { 4 });
        }
    }
}
