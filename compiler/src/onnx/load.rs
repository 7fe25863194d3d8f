//! Reading `.onnx` files: memory-mapped, decoded with prost. Initializer `raw_data` fields
//! decode as slices of the mapping (`bytes::Bytes`), so no weight is copied.

use super::proto::ModelProto;
use super::tensor::ExternalData;
use anyhow::{Context, Result, bail};
use bytes::Bytes;
use prost::Message;
use std::path::Path;

/// A decoded model plus what is needed to resolve its external data.
pub struct OnnxModel {
    pub proto: ModelProto,
    pub external: ExternalData,
}

/// Maps a file read-only into memory. Empty files become empty buffers (mmap rejects them).
pub fn map_file(path: &Path) -> Result<Bytes> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let len = file.metadata().with_context(|| format!("cannot stat {}", path.display()))?.len();
    if len == 0 {
        return Ok(Bytes::new());
    }
    // SAFETY: the map is read-only and private. The one hazard of file mappings is another
    // process truncating or rewriting the file while it is mapped; neoc documents that model
    // files must not change while loaded, as every mmap-based loader (onnxruntime, tract) does.
    let map = unsafe { memmap2::Mmap::map(&file) }.with_context(|| format!("cannot map {}", path.display()))?;
    Ok(Bytes::from_owner(map))
}

/// Loads a model from a file. External data is resolved relative to the file's folder.
pub fn load(path: &Path) -> Result<OnnxModel> {
    let bytes = map_file(path)?;
    let dir = path.parent().map(|p| if p.as_os_str().is_empty() { Path::new(".") } else { p }).map(Path::to_path_buf);
    from_bytes(bytes, dir).with_context(|| format!("loading {}", path.display()))
}

/// Decodes a model from memory. `base_dir` is where external data files live, if any.
pub fn from_bytes(bytes: Bytes, base_dir: Option<std::path::PathBuf>) -> Result<OnnxModel> {
    if bytes.is_empty() {
        bail!("the file is empty");
    }
    let proto = ModelProto::decode(bytes).map_err(|e| anyhow::anyhow!("not a valid ONNX protobuf: {e}"))?;
    if proto.graph.is_none() {
        bail!("the model has no graph (is this an ONNX file?)");
    }
    Ok(OnnxModel { proto, external: ExternalData::new(base_dir) })
}
