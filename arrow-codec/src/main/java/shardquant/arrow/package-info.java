/**
 * Shards as Apache Arrow record batches: the form in which shardquant's data moves between Spark
 * tasks. Two schemas, both laid out in {@link shardquant.arrow.ArrowShards}:
 *
 * <ul>
 *   <li><b>tensor_shard</b> carries work <em>to</em> an executor: rows [row_start, row_end) of one input
 *       tensor, with the whole tensor's shape so the quantizer knows where the rows sit. An executor
 *       builds it by reading the byte range straight from storage into the batch's off-heap buffer
 *       ({@link shardquant.arrow.ArrowShards#tensorShard(String, long[], long, long,
 *       shardquant.kernels.dtype.DType, org.apache.arrow.memory.BufferAllocator,
 *       shardquant.arrow.ArrowShards.Filler)}), so the bytes are never copied to the Java heap.</li>
 *   <li><b>quantized_shard</b> carries results <em>from</em> the quantize stage to the task that
 *       assembles an output file: every stored part (codes, scales, zero points, tables, or a copied
 *       tensor under its own name) of one row shard, in stored order, each with the dimension along
 *       which it grows with the original rows, so the assembler can place the pieces of all shards of
 *       a tensor without knowing the recipe.</li>
 * </ul>
 *
 * <p>Batches cross Spark as Arrow IPC stream bytes; an Arrow IPC file of the same batch is for
 * inspection and tests ({@code pyarrow.ipc.open_file} reads it). Decoded {@link
 * shardquant.kernels.tensor.Tensor}s are views of the batch's Arrow memory and live only as long as
 * its {@link shardquant.arrow.ShardBatch}, which owns that memory and is closed once.
 */
package shardquant.arrow;
