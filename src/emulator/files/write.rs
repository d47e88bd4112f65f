//! The writes tests and users change content with: `upload`, `delete_v2`, `move_v2` and
//! `create_folder_v2`, and their errors in Dropbox's `WriteError` shapes.

use super::{malformed, resolve, user};
use crate::emulator::tree::{Namespace, WriteError, WriteMode};
use crate::emulator::wire::{ApiError, Arg, union_tag};
use crate::emulator::{Call, Emulator, Reply};
use crate::upstream::content_hash::is_content_hash;
use hyper::StatusCode;
use serde_json::{Value, json};

/// A write path: only `/…` (or `ns:` relative) paths, never the root or an id.
fn write_path<'a>(arg: &'a Arg, field: &str, tag: &str) -> Result<&'a str, ApiError> {
    let p = arg.path(field, false)?;
    if !p.starts_with('/') {
        return Err(ApiError::bad_field(
            arg.source,
            field,
            format!("'{p}' did not match pattern '(/(.|[\\r\\n])*)|(ns:[0-9]+(/.*)?)'"),
        ));
    }
    if malformed(p) {
        return Err(ApiError::route(
            json!({".tag": tag, tag: {".tag": "malformed_path"}}),
        ));
    }
    Ok(p)
}

/// The `WriteError` union value of a refused write; storage failures are our 500.
fn write_error_value(e: WriteError) -> Result<Value, ApiError> {
    match e {
        WriteError::Conflict(what) => Ok(json!({".tag": "conflict", "conflict": {".tag": what}})),
        WriteError::NotFound => Ok(json!({".tag": "not_found"})),
        WriteError::IntoItself => Err(ApiError::route(
            json!({".tag": "cant_move_folder_into_itself"}),
        )),
        WriteError::Io(why) => {
            tracing::error!(error = %why, "emulator storage failed");
            Err(ApiError::Server(StatusCode::INTERNAL_SERVER_ERROR))
        }
    }
}

/// A refused write as a route error, the union value nested under `tag`.
fn write_error(tag: &str, e: WriteError) -> ApiError {
    match write_error_value(e) {
        Ok(v) => ApiError::route(json!({".tag": tag, tag: v})),
        Err(e) => e,
    }
}

/// `UploadError.path` is a flattened `UploadWriteFailed {reason: WriteError, upload_session_id}`.
fn upload_error(reason: Value) -> ApiError {
    ApiError::route(json!({".tag": "path", "reason": reason, "upload_session_id": ""}))
}

/// Applies a write to an account's namespace and tells watchers if anything changed.
fn write<T>(
    emu: &Emulator,
    account: usize,
    f: impl FnOnce(&mut Namespace) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let mut world = emu.world();
    let before = world.accounts[account].ns.seq();
    let out = f(&mut world.accounts[account].ns)?;
    if world.accounts[account].ns.seq() != before {
        emu.changed(&world, account);
    }
    Ok(out)
}

pub(in crate::emulator) fn upload(emu: &Emulator, call: &Call) -> Result<Reply, ApiError> {
    let account = user(call)?;
    let arg = &call.arg;
    let path = write_path(arg, "path", "path").map_err(|e| match e {
        ApiError::Route(_) => upload_error(json!({".tag": "malformed_path"})),
        other => other,
    })?;
    let mode = match arg.get("mode") {
        None => WriteMode::Add,
        Some(v) => match union_tag(v) {
            Some("add") => WriteMode::Add,
            Some("overwrite") => WriteMode::Overwrite,
            Some("update") => {
                let rev = v
                    .get("update")
                    .and_then(Value::as_str)
                    .ok_or_else(|| ApiError::bad_field(arg.source, "mode", "update needs a rev"))?;
                WriteMode::Update(rev.to_owned())
            }
            _ => return Err(ApiError::bad_field(arg.source, "mode", "unknown tag")),
        },
    };
    let autorename = arg.bool("autorename", false)?;
    arg.bool("mute", false)?;
    arg.bool("strict_conflict", false)?;
    let client_modified = match arg.opt_str("client_modified")? {
        None => None,
        Some(s) => Some(humantime::parse_rfc3339(s).map_err(|_| {
            ApiError::bad_field(
                arg.source,
                "client_modified",
                format!("time data '{s}' does not match format '%Y-%m-%dT%H:%M:%SZ'"),
            )
        })?),
    };
    if let Some(want) = arg.opt_str("content_hash")? {
        if !is_content_hash(want) {
            return Err(ApiError::bad_field(
                arg.source,
                "content_hash",
                "must be 64 hex chars",
            ));
        }
        if crate::upstream::content_hash::content_hash(&call.body) != want {
            return Err(ApiError::route(json!({".tag": "content_hash_mismatch"})));
        }
    }
    let node = write(emu, account, |ns| {
        ns.put_file(path, call.body.clone(), &mode, autorename, client_modified)
            .map_err(|e| match write_error_value(e) {
                Ok(reason) => upload_error(reason),
                Err(e) => e,
            })
    })?;
    Ok(Reply::Json(json!(
        node.file_metadata().expect("uploaded a file")
    )))
}

pub(in crate::emulator) fn delete(emu: &Emulator, call: &Call) -> Result<Reply, ApiError> {
    let account = user(call)?;
    let path = call.arg.path("path", false)?;
    let key = resolve(&emu.world().accounts[account], path, "path_lookup")?;
    let meta = write(emu, account, |ns| {
        ns.delete(&key).map_err(|e| write_error("path_lookup", e))
    })?;
    Ok(Reply::Json(json!({ "metadata": meta })))
}

pub(in crate::emulator) fn move_v2(emu: &Emulator, call: &Call) -> Result<Reply, ApiError> {
    let account = user(call)?;
    let from = call.arg.path("from_path", false)?;
    let to = write_path(&call.arg, "to_path", "to")?;
    let autorename = call.arg.bool("autorename", false)?;
    call.arg.bool("allow_shared_folder", false)?;
    call.arg.bool("allow_ownership_transfer", false)?;
    let from_key = resolve(&emu.world().accounts[account], from, "from_lookup")?;
    let node = write(emu, account, |ns| {
        ns.move_to(&from_key, to, autorename).map_err(|e| match e {
            WriteError::NotFound => ApiError::lookup("from_lookup", "not_found"),
            e => write_error("to", e),
        })
    })?;
    Ok(Reply::Json(json!({ "metadata": node.metadata() })))
}

pub(in crate::emulator) fn create_folder(emu: &Emulator, call: &Call) -> Result<Reply, ApiError> {
    let account = user(call)?;
    let path = write_path(&call.arg, "path", "path")?;
    let autorename = call.arg.bool("autorename", false)?;
    let node = write(emu, account, |ns| {
        ns.create_folder(path, autorename)
            .map_err(|e| write_error("path", e))
    })?;
    // CreateFolderResult.metadata is a plain FolderMetadata: no `.tag`.
    let mut meta = json!(node.metadata());
    meta.as_object_mut().expect("an object").remove(".tag");
    Ok(Reply::Json(json!({ "metadata": meta })))
}
