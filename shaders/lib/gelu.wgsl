// GELU, tanh form: y = x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3))); shared by the GELU
// kernels and the matmul epilogue that fuses it.

const GELU_SCALE: f32 = 0.7978845608028654; // sqrt(2/pi)

// tanh with its argument clamped: some drivers compute tanh through exp and overflow to NaN.
fn gelu_tanh(x: vec2<f32>) -> vec2<f32> {
    return tanh(clamp(GELU_SCALE * (x + 0.044715 * x * x * x), vec2<f32>(-15.0), vec2<f32>(15.0)));
}

fn gelu(x: vec2<f32>) -> vec2<f32> {
    return 0.5 * x * (1.0 + gelu_tanh(x));
}
