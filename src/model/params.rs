//! The parameters of the GPT live in one flat block (as in llm.c), so one AdamW dispatch and
//! one norm reduction cover them all. Layout: every 2-D weight first (they get weight decay),
//! then every 1-D parameter; each tensor named as in GPT-2.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::config::ModelConfig;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    Normal(f32),
    Zeros,
    Ones,
}

#[derive(Clone, Debug)]
pub struct ParamTensor {
    /// GPT-2 name, e.g. `h.0.attn.c_attn.weight`
    pub name: String,
    /// PyTorch shape: Linear weights are [out, in]
    pub shape: Vec<usize>,
    /// first element in the block
    pub offset: usize,
    pub len: usize,
    pub init: Init,
}

/// Offsets of one transformer block's tensors.
#[derive(Clone, Copy, Debug)]
pub struct BlockOffsets {
    pub ln1_w: u32,
    pub ln1_b: u32,
    pub qkv_w: u32,
    pub qkv_b: u32,
    pub attn_proj_w: u32,
    pub attn_proj_b: u32,
    pub ln2_w: u32,
    pub ln2_b: u32,
    pub fc_w: u32,
    pub fc_b: u32,
    pub fc_proj_w: u32,
    pub fc_proj_b: u32,
}

#[derive(Clone, Debug)]
pub struct ParamLayout {
    /// in block order; the embedding's padding rows (after wte) are in none of them
    pub tensors: Vec<ParamTensor>,
    /// elements in the block
    pub total: usize,
    /// elements [0, n_decay) are 2-D weights
    pub n_decay: usize,
    pub wte: u32,
    pub wpe: u32,
    pub lnf_w: u32,
    pub lnf_b: u32,
    pub blocks: Vec<BlockOffsets>,
}

impl ParamLayout {
    pub fn new(cfg: &ModelConfig) -> ParamLayout {
        let (d, v, t, l) = (cfg.d as usize, cfg.vocab as usize, cfg.ctx as usize, cfg.n_layer as usize);
        let std = 0.02f32;
        let proj_std = 0.02 / (2.0 * l as f32).sqrt();
        let mut tensors: Vec<ParamTensor> = Vec::new();
        fn end(tensors: &[ParamTensor]) -> usize {
            tensors.last().map_or(0, |t| t.offset + t.len)
        }
        fn add_at(tensors: &mut Vec<ParamTensor>, offset: usize, name: String, shape: Vec<usize>, init: Init) {
            let len = shape.iter().product();
            tensors.push(ParamTensor { name, shape, offset, len, init });
        }
        fn add_to(tensors: &mut Vec<ParamTensor>, name: String, shape: Vec<usize>, init: Init) {
            add_at(tensors, end(tensors), name, shape, init);
        }
        add_to(&mut tensors, "wte".into(), vec![v, d], Init::Normal(std));
        // wte's padding rows: in the block (the head reads them) but in no tensor
        let wte_rows = cfg.padded_vocab() as usize;
        add_at(&mut tensors, wte_rows * d, "wpe".into(), vec![t, d], Init::Normal(std));
        for i in 0..l {
            add_to(&mut tensors, format!("h.{i}.attn.c_attn.weight"), vec![3 * d, d], Init::Normal(std));
            add_to(&mut tensors, format!("h.{i}.attn.c_proj.weight"), vec![d, d], Init::Normal(proj_std));
            add_to(&mut tensors, format!("h.{i}.mlp.c_fc.weight"), vec![4 * d, d], Init::Normal(std));
            add_to(&mut tensors, format!("h.{i}.mlp.c_proj.weight"), vec![d, 4 * d], Init::Normal(proj_std));
        }
        let n_decay = end(&tensors);
        for i in 0..l {
            add_to(&mut tensors, format!("h.{i}.ln_1.weight"), vec![d], Init::Ones);
            add_to(&mut tensors, format!("h.{i}.ln_1.bias"), vec![d], Init::Zeros);
            add_to(&mut tensors, format!("h.{i}.attn.c_attn.bias"), vec![3 * d], Init::Zeros);
            add_to(&mut tensors, format!("h.{i}.attn.c_proj.bias"), vec![d], Init::Zeros);
            add_to(&mut tensors, format!("h.{i}.ln_2.weight"), vec![d], Init::Ones);
            add_to(&mut tensors, format!("h.{i}.ln_2.bias"), vec![d], Init::Zeros);
            add_to(&mut tensors, format!("h.{i}.mlp.c_fc.bias"), vec![4 * d], Init::Zeros);
            add_to(&mut tensors, format!("h.{i}.mlp.c_proj.bias"), vec![d], Init::Zeros);
        }
        add_to(&mut tensors, "ln_f.weight".into(), vec![d], Init::Ones);
        add_to(&mut tensors, "ln_f.bias".into(), vec![d], Init::Zeros);
        let total = end(&tensors);

        let find = |name: &str| tensors.iter().find(|t| t.name == name).expect("tensor in layout").offset as u32;
        let blocks = (0..l)
            .map(|i| BlockOffsets {
                ln1_w: find(&format!("h.{i}.ln_1.weight")),
                ln1_b: find(&format!("h.{i}.ln_1.bias")),
                qkv_w: find(&format!("h.{i}.attn.c_attn.weight")),
                qkv_b: find(&format!("h.{i}.attn.c_attn.bias")),
                attn_proj_w: find(&format!("h.{i}.attn.c_proj.weight")),
                attn_proj_b: find(&format!("h.{i}.attn.c_proj.bias")),
                ln2_w: find(&format!("h.{i}.ln_2.weight")),
                ln2_b: find(&format!("h.{i}.ln_2.bias")),
                fc_w: find(&format!("h.{i}.mlp.c_fc.weight")),
                fc_b: find(&format!("h.{i}.mlp.c_fc.bias")),
                fc_proj_w: find(&format!("h.{i}.mlp.c_proj.weight")),
                fc_proj_b: find(&format!("h.{i}.mlp.c_proj.bias")),
            })
            .collect();
        ParamLayout {
            wte: find("wte"),
            wpe: find("wpe"),
            lnf_w: find("ln_f.weight"),
            lnf_b: find("ln_f.bias"),
            blocks,
            tensors,
            total,
            n_decay,
        }
    }

    pub fn tensor(&self, name: &str) -> Option<&ParamTensor> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The initial f32 values of the block, drawn from `seed` (the padding rows 0).
    pub fn init(&self, seed: u64) -> Vec<f32> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut out = vec![0.0; self.total];
        for t in &self.tensors {
            let values = &mut out[t.offset..t.offset + t.len];
            match t.init {
                Init::Zeros => values.fill(0.0),
                Init::Ones => values.fill(1.0),
                Init::Normal(std) => values.iter_mut().for_each(|x| *x = std * standard_normal(&mut rng)),
            }
        }
        out
    }
}

/// One N(0, 1) draw (Box-Muller).
fn standard_normal(rng: &mut StdRng) -> f32 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

/// A run's raw GPU state: bytes exactly as the GPU buffers hold them.
pub struct RawState {
    pub params: Vec<u8>,
    pub m: Vec<u8>,
    pub v: Vec<u8>,
    /// master weights or compensation, as the mode keeps them
    pub extra: Option<Vec<u8>>,
}

impl RawState {
    /// Splits bytes laid out as [`crate::model::gpt::GptGpu::copy_raw`] writes them.
    pub fn from_parts(bytes: &[u8], sizes: [u64; 4]) -> RawState {
        let mut rest = bytes;
        let mut take = |n: u64| {
            let (part, tail) = rest.split_at(n as usize);
            rest = tail;
            part.to_vec()
        };
        let (params, m, v, extra) = (take(sizes[0]), take(sizes[1]), take(sizes[2]), take(sizes[3]));
        RawState { params, m, v, extra: (sizes[3] > 0).then_some(extra) }
    }
}
