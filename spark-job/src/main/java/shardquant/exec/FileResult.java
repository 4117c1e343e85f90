package shardquant.exec;

import java.io.Serializable;
import java.util.List;
import shardquant.common.TensorReport;

/** What an assembly task tells the driver: the file it committed, its size, its tensors' reports and how long it took. */
public record FileResult(int file, String name, long bytes, List<TensorReport> tensors, long nanos)
    implements Serializable {}
