//! Which SIMD instruction set the kernels of `kernels::skinny` and `kernels::dots` run on this
//! CPU, checked once per process; `CONVERGENT_L2O_NO_SIMD=1` turns them off (general gemm
//! takes over).

/// The instruction set the kernels use.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Isa {
    Avx512,
    Avx2,
    None,
}

/// This CPU's [`Isa`] (always `None` off x86_64).
pub(crate) fn isa() -> Isa {
    use std::sync::OnceLock;
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(|| {
        if std::env::var_os("CONVERGENT_L2O_NO_SIMD").is_some() {
            return Isa::None;
        }
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") {
                return Isa::Avx512;
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                return Isa::Avx2;
            }
        }
        Isa::None
    })
}

/// Runs the AVX-512 or the AVX2 expression by [`isa`] and gives true; gives false, running
/// neither, when this CPU has no kernel. Off x86_64 neither is compiled.
macro_rules! by_isa {
    ($avx512:expr, $avx2:expr) => {{
        #[cfg(target_arch = "x86_64")]
        let ran = match $crate::kernels::isa::isa() {
            $crate::kernels::isa::Isa::Avx512 => {
                $avx512;
                true
            }
            $crate::kernels::isa::Isa::Avx2 => {
                $avx2;
                true
            }
            $crate::kernels::isa::Isa::None => false,
        };
        #[cfg(not(target_arch = "x86_64"))]
        let ran = false;
        ran
    }};
}
