"""Refuse a SavedModel whose graph would touch the file system, the network or processes.

A SavedModel is a program, not data: ``tf.saved_model.load`` and every call of its signature
run the ops stored in ``saved_model.pb``. A ``tf.Module`` whose ``serving_default`` calls
``tf.io.write_file`` writes that file when edgekit computes the reference. This module reads
the protobuf (nothing is executed, no function is traced or loaded) and lists every op of
the top-level graph and of every function in the function library against a deny list.

Save/Restore ops are allowed only in the functions that the saver (``saver_def``) reaches:
they restore the variables from the SavedModel's own ``variables/`` directory. Used
anywhere else they read and write arbitrary paths.

Runs in the TensorFlow worker (the protobuf classes ship with TensorFlow), before
``tf.saved_model.load``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Iterator

from edgekit.errors import InputError, UnsafeModelError

# From TensorFlow's registered op list (TF 2.21, 1908 ops): every op that opens, lists, maps,
# reads or writes a path, talks to another process or host, or runs Python.
FILE_OPS = frozenset({
    "ReadFile", "WriteFile", "MatchingFiles", "ImmutableConst", "FileSystemSetConfiguration",
    "InitializeTableFromTextFile", "InitializeTableFromTextFileV2", "LoadAndRemapMatrix", "GenerateVocabRemapping",
    "DecodeProtoV2", "EncodeProto",  # descriptor_source may name a file
    "ImportEvent", "DumpTensor", "CalibrationStatisticsSaver",
    "DebugIdentity", "DebugIdentityV2", "DebugIdentityV3", "DebugNanCount", "DebugNumericSummary",
    "DebugNumericSummaryV2",  # debug_urls = file://...
})
SUMMARY_OPS = frozenset({
    "CreateSummaryFileWriter", "CreateSummaryDbWriter", "SummaryWriter", "FlushSummaryWriter", "CloseSummaryWriter",
    "WriteSummary", "WriteScalarSummary", "WriteHistogramSummary", "WriteImageSummary", "WriteAudioSummary",
    "WriteGraphSummary", "WriteRawProtoSummary", "StatsAggregatorSetSummaryWriter",
})
READER_OPS = frozenset({
    "TFRecordReader", "TFRecordReaderV2", "TextLineReader", "TextLineReaderV2", "WholeFileReader",
    "WholeFileReaderV2", "FixedLengthRecordReader", "FixedLengthRecordReaderV2", "IdentityReader",
    "IdentityReaderV2", "LMDBReader", "RecordInput", "ReaderRead", "ReaderReadV2", "ReaderReadUpTo",
    "ReaderReadUpToV2", "ReaderRestoreState", "ReaderRestoreStateV2",
})
DATASET_OPS = frozenset({
    "TFRecordDataset", "TFRecordDatasetV2", "TextLineDataset", "FixedLengthRecordDataset",
    "FixedLengthRecordDatasetV2", "CSVDataset", "CSVDatasetV2", "ExperimentalCSVDataset", "SqlDataset",
    "ExperimentalSqlDataset", "LMDBDataset", "ExperimentalLMDBDataset", "MatchingFilesDataset",
    "ExperimentalMatchingFilesDataset", "CacheDataset", "CacheDatasetV2", "SnapshotDataset", "SnapshotDatasetV2",
    "SnapshotDatasetReader", "SnapshotNestedDatasetReader", "SnapshotChunkDataset", "ListSnapshotChunksDataset",
    "SaveDataset", "SaveDatasetV2", "LoadDataset", "DatasetToTFRecord", "ExperimentalDatasetToTFRecord",
    "DistributedSave", "DataServiceDataset", "DataServiceDatasetV2", "DataServiceDatasetV3",
    "DataServiceDatasetV4",
})
PROCESS_OPS = frozenset({
    "PyFunc", "PyFuncStateless", "EagerPyFunc",
    "RpcServer", "RpcServerStart", "RpcServerRegister", "RpcClient", "RpcCall", "RpcCheckStatus", "RpcGetValue",
    "DeleteRpcFutureResource", "RemoteCall", "Send", "Recv", "_Send", "_Recv", "_HostSend", "_HostRecv",
    "WorkerHeartbeat", "CollectiveInitializeCommunicator",
})
# Legitimate only where the saver restores (or saves) the SavedModel's own variables.
SAVER_OPS = frozenset({
    "Save", "SaveSlices", "SaveV2", "Restore", "RestoreSlice", "RestoreV2", "MergeV2Checkpoints",
    "ShardedFilename", "ShardedFilespec", "DTensorRestoreV2",
})
DENIED = FILE_OPS | SUMMARY_OPS | READER_OPS | DATASET_OPS | PROCESS_OPS
MAX_PB_BYTES = 2 * 1024**3  # protobuf's own limit


def read_meta_graphs(path: str | Path) -> list[Any]:
    """The MetaGraphDefs of ``saved_model.pb`` (or ``.pbtxt``), parsed, nothing executed."""
    from google.protobuf import message, text_format
    from tensorflow.core.protobuf import saved_model_pb2

    d = Path(path)
    sm = saved_model_pb2.SavedModel()
    try:
        if (d / "saved_model.pb").is_file():
            data = (d / "saved_model.pb").read_bytes()
            if len(data) > MAX_PB_BYTES:
                raise InputError(f"{d}/saved_model.pb is larger than protobuf's 2 GiB limit")
            sm.ParseFromString(data)
        else:
            text_format.Parse((d / "saved_model.pbtxt").read_text(errors="replace"), sm)
    except (message.DecodeError, text_format.ParseError, RecursionError) as exc:
        raise InputError(f"{d} has an unreadable saved_model.pb ({str(exc).splitlines()[0][:200]})") from None
    except OSError as exc:
        raise InputError(f"cannot read SavedModel {d}: {exc.strerror}") from None
    return list(sm.meta_graphs)


def _node_name(ref: str) -> str:
    return ref.lstrip("^").split(":")[0]


def _funcs_of(node: Any) -> Iterator[str]:
    """Functions a node calls: its op when that is a library function, and func attrs."""
    yield node.op
    for attr in node.attr.values():
        if attr.HasField("func"):
            yield attr.func.name
        if attr.HasField("list"):
            for f in attr.list.func:
                yield f.name


def _reach(start: Iterable[str], known: Any, neighbours: Any) -> set[str]:
    """Every name in ``known`` reachable from ``start`` through ``neighbours(name)``."""
    seen: set[str] = set()
    todo = [f for f in start if f in known]
    while todo:
        f = todo.pop()
        if f in seen:
            continue
        seen.add(f)
        todo.extend(g for g in neighbours(f) if g in known and g not in seen)
    return seen


def _closure(start: Iterable[str], library: dict[str, Any]) -> set[str]:
    return _reach(start, library, lambda f: (g for n in library[f].node_def for g in _funcs_of(n)))


def _saver_nodes(mg: Any) -> set[str]:
    """Top-level nodes the saver runs (save and restore), found by walking their inputs back."""
    graph = {n.name: n for n in mg.graph_def.node}
    roots = [_node_name(r) for r in (mg.saver_def.save_tensor_name, mg.saver_def.restore_op_name) if r]
    return _reach(roots, graph, lambda name: (_node_name(i) for i in graph[name].input))


def _denied(node: Any, saver_scope: bool) -> bool:
    if node.op in DENIED:
        return True
    if node.op in SAVER_OPS:
        return not saver_scope
    if node.op == "PrintV2":  # to stderr/stdout/log is harmless; output_stream="file://..." writes a file
        stream = node.attr["output_stream"].s.decode(errors="replace") if "output_stream" in node.attr else ""
        return stream.startswith("file://")
    return False


def forbidden_ops(meta_graphs: list[Any]) -> list[str]:
    """``"WriteFile (in __inference_serve_12)"`` for every denied op, top-level graph included."""
    found: list[str] = []
    for mg in meta_graphs:
        library = {f.signature.name: f for f in mg.graph_def.library.function}
        saver = _saver_nodes(mg)
        others = [n for n in mg.graph_def.node if n.name not in saver]
        strict = _closure((g for n in others for g in _funcs_of(n)), library)
        lenient = _closure((g for n in mg.graph_def.node if n.name in saver for g in _funcs_of(n)), library) - strict
        for n in mg.graph_def.node:
            if _denied(n, n.name in saver):
                found.append(f"{n.op} (node {n.name})")
        for name, f in library.items():
            for n in f.node_def:
                if _denied(n, name in lenient):
                    found.append(f"{n.op} (in {name})")
    return list(dict.fromkeys(found))


def declared_const_bytes(meta_graphs: list[Any]) -> int:
    """Bytes the graph's constants declare: a ``Const`` may hold one value and a huge shape,
    which TensorFlow expands when the function runs (a few bytes in the file, GiB in memory)."""
    from tensorflow.python.framework import dtypes

    total = 0
    for mg in meta_graphs:
        nodes = [n for f in mg.graph_def.library.function for n in f.node_def] + list(mg.graph_def.node)
        for n in nodes:
            if n.op != "Const" or "value" not in n.attr:
                continue
            t = n.attr["value"].tensor
            count = 1
            for d in t.tensor_shape.dim:
                count *= max(d.size, 0)
            try:
                size = dtypes.as_dtype(t.dtype).size
            except (TypeError, ValueError):
                size = 8
            total += count * max(size, 1)
    return total


def check_saved_model(path: str | Path, unsafe: bool = False) -> None:
    """Raise ``UnsafeModelError`` naming the ops, unless ``unsafe``; ``InputError`` when its
    constants alone would not fit in memory (``unsafe`` or not)."""
    from edgekit.memguard import refuse_if_too_big

    graphs = read_meta_graphs(path)
    refuse_if_too_big(f"SavedModel {path}'s constants", declared_const_bytes(graphs), 1)
    if unsafe:
        return
    bad = forbidden_ops(graphs)
    if bad:
        shown = ", ".join(bad[:6]) + (f" and {len(bad) - 6} more" if len(bad) > 6 else "")
        raise UnsafeModelError(
            f"SavedModel {path} uses ops that touch the file system, the network or processes: {shown}; "
            "loading or calling it would run them: pass --unsafe if you trust its author"
        )
