//! CUDA artifacts (format version 6) without a GPU: they round-trip through the format,
//! corrupt ones are refused, and loading one is a clean `LoadError` — `MissingRuntimeFeature`
//! in a build without the `cuda` feature, and with it, on a machine with no driver (CI), a
//! `LoadError::Cuda` that says so. Never a panic. The CPU path of the same build keeps
//! running (`run_x86.rs` and the rest of the suite run under `--features cuda` too:
//! `scripts/test.sh`).

use neoc_runtime::artifact::{self, CUDA_FORMAT_VERSION, SectionKind};
use neoc_runtime::cuda::{Launch, Program, Ptr};
use neoc_runtime::{Artifact, ArtifactWriter, CallConv, DType, FormatError, Isa, LoadError, Metadata, Model, TensorSig};

fn meta() -> Metadata {
    Metadata {
        target: "g4dn".into(),
        isa: Isa::X86_64,
        call_conv: CallConv::SystemV,
        cpu_features: vec![],
        inputs: vec![TensorSig::new("x", DType::F32, [4])],
        outputs: vec![TensorSig::new("y", DType::F32, [4])],
        arena_size: 0,
        entry_offset: 0,
        kernel_abi_version: 1,
        runtime_features: vec!["cuda".into()],
    }
}

fn program() -> Program {
    Program {
        sm: 75,
        min_sm: 70,
        ptx_isa: "6.0".into(),
        precision: "fp32".into(),
        arena_bytes: 64,
        status_offset: 48,
        inputs: vec![0],
        outputs: vec![16],
        modules: vec![".version 6.0\n.target sm_70\n.address_size 64\n.visible .entry k0(.param .u64 p0, .param .u64 p1)\n{\n\tret;\n}\n".into()],
        launches: vec![
            Launch::Fill { dst: Ptr::arena(48), value: 0, bytes: 4 },
            Launch::Kernel { module: 0, name: "k0".into(), grid: [1, 1, 1], block: [32, 1, 1], shared: 0, args: vec![Ptr::arena(0), Ptr::arena(16)] },
        ],
    }
}

fn artifact() -> Vec<u8> {
    let mut w = ArtifactWriter::new(meta());
    w.set_cuda_program(program());
    w.push_weights(&[1, 2, 3, 4]);
    w.finish().unwrap()
}

#[test]
fn a_cuda_artifact_round_trips() {
    let bytes = artifact();
    let a = Artifact::parse(&bytes).unwrap();
    assert_eq!(a.format_version, CUDA_FORMAT_VERSION);
    assert_eq!(a.cuda_program(), Some(&program()));
    assert!(a.code().is_empty());
    assert_eq!(&a.weights()[..4], &[1, 2, 3, 4]);
}

#[test]
fn the_writer_and_the_reader_refuse_bad_cuda_artifacts() {
    // The metadata must name the runtime feature and no CPU feature.
    let mut w = ArtifactWriter::new(Metadata { runtime_features: vec![], ..meta() });
    w.set_cuda_program(program());
    assert!(w.finish().unwrap_err().to_string().contains("runtime feature 'cuda'"));
    let mut w = ArtifactWriter::new(Metadata { cpu_features: vec!["avx2".into()], ..meta() });
    w.set_cuda_program(program());
    assert!(w.finish().is_err());
    // A launch reading past the weights.
    let mut p = program();
    p.launches.push(Launch::Copy { dst: Ptr::arena(0), src: Ptr::weights(2), bytes: 8 });
    let mut w = ArtifactWriter::new(meta());
    w.set_cuda_program(p);
    w.push_weights(&[1, 2, 3, 4]);
    assert!(w.finish().unwrap_err().to_string().contains("copy"));
    // A version 3 file with a code section instead: unknown section.
    let mut bytes = artifact();
    let table = artifact::FIXED_HEADER_LEN + 8 * (env!("CARGO_PKG_VERSION").len().div_ceil(8));
    let cuda_entry = table + artifact::SECTION_ENTRY_LEN;
    assert_eq!(u32::from_le_bytes(bytes[cuda_entry..cuda_entry + 4].try_into().unwrap()), SectionKind::Cuda as u32);
    bytes[cuda_entry..cuda_entry + 4].copy_from_slice(&(SectionKind::Code as u32).to_le_bytes());
    artifact::stamp_checksum(&mut bytes);
    assert!(matches!(Artifact::parse(&bytes), Err(FormatError::UnknownSection { .. })));
    // Every truncation is an error, never a panic.
    let bytes = artifact();
    for cut in (0..bytes.len()).step_by(7) {
        let mut b = bytes[..cut].to_vec();
        if b.len() >= artifact::FIXED_HEADER_LEN {
            b[16..24].copy_from_slice(&(cut as u64).to_le_bytes());
            artifact::stamp_checksum(&mut b);
        }
        assert!(Artifact::parse(&b).is_err(), "cut at {cut}");
    }
}

/// Without the feature the runtime names it; with it and no driver (or no GPU) the error
/// says what is missing. Either way a `LoadError`, never a panic.
#[test]
fn loading_without_a_gpu_is_a_clean_error() {
    let e = match Model::from_bytes(&artifact()) {
        Ok(model) => {
            // Only on a machine with a GPU and its driver: the program runs (its kernel
            // does nothing) and the status word is clear.
            assert!(neoc_runtime::cuda::ENABLED);
            let x = neoc_runtime::Tensor::from_vec([4], vec![1f32; 4]).unwrap();
            model.run(&[x]).unwrap();
            return;
        }
        Err(e) => e,
    };
    if !neoc_runtime::cuda::ENABLED {
        assert!(matches!(&e, LoadError::MissingRuntimeFeature { feature } if feature == "cuda"), "{e}");
        assert!(e.to_string().contains("features = [\"cuda\"]"), "{e}");
        return;
    }
    #[cfg(feature = "cuda")]
    {
        let LoadError::Cuda(msg) = &e else { panic!("expected LoadError::Cuda, got {e}") };
        if !neoc_runtime::cuda::driver_present() {
            assert!(msg.contains("no CUDA driver library"), "{msg}");
        } else {
            // A driver without a usable GPU: cuInit or the device lookup said so.
            assert!(msg.contains("cuInit") || msg.contains("GPU"), "{msg}");
        }
    }
}
