//! The checks every flag value passes (ranges named in the error), and small parsers.

use anyhow::Result;
use srgpt::precision::Precision;
use srgpt::Failure;

/// The most bytes `sample` generates in one call.
pub const MAX_SAMPLE_TOKENS: u64 = 1_000_000;

/// A value parser for whole numbers in `lo..=hi`, whose error names the accepted range.
pub fn whole(lo: u64, hi: u64) -> impl Fn(&str) -> Result<u64, String> + Clone + Send + Sync + 'static {
    move |text: &str| {
        let range = if hi == u64::MAX { format!("a whole number from {lo} up") } else { format!("a whole number from {lo} to {hi}") };
        match text.trim().parse::<u64>() {
            Ok(v) if (lo..=hi).contains(&v) => Ok(v),
            _ => Err(format!("expected {range}")),
        }
    }
}

/// `KEY=VALUE`, for `--define`.
pub fn key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err("expected KEY=VALUE, e.g. A=bf16".into()),
    }
}

/// A finite number above 0.
pub fn positive_number(text: &str) -> Result<f32, String> {
    match text.trim().parse::<f32>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err("expected a finite number above 0 (e.g. 3e-3)".into()),
    }
}

/// A finite number of 0 or more.
pub fn non_negative_number(text: &str) -> Result<f32, String> {
    match text.trim().parse::<f32>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err("expected a finite number of 0 or more".into()),
    }
}

pub fn parse_precisions(names: Option<&[String]>) -> Result<Vec<Precision>> {
    let Some(names) = names else {
        return Ok(vec![Precision::Fp32, Precision::Bf16, Precision::Bf16Sr]);
    };
    let mut precisions = Vec::new();
    for name in names {
        let p = Precision::parse(name)
            .ok_or_else(|| bad_input(format!("unknown precision '{name}' (choose from fp32, mixed, bf16, bf16-sr, bf16-kahan)")))?;
        if precisions.contains(&p) {
            return Err(bad_input(format!("precision {name} is listed twice")));
        }
        precisions.push(p);
    }
    if precisions.is_empty() {
        return Err(bad_input("--precision lists no mode".into()));
    }
    Ok(precisions)
}

pub fn bad_input(msg: String) -> anyhow::Error {
    Failure::BadInput(msg).into()
}
