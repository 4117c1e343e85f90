package shardquant.arrow;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.vector.BaseLargeVariableWidthVector;
import org.apache.arrow.vector.BigIntVector;
import org.apache.arrow.vector.FieldVector;
import org.apache.arrow.vector.IntVector;
import org.apache.arrow.vector.LargeVarBinaryVector;
import org.apache.arrow.vector.VarCharVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.complex.ListVector;

/**
 * Typed access to one cell of the columns {@link ArrowShards}' schemas use. Readers assume the schema
 * was already checked, so the casts hold; a null cell is a corrupt batch and is reported as such.
 */
final class Columns {
  private static final int OFFSET_WIDTH = BaseLargeVariableWidthVector.OFFSET_WIDTH;

  private Columns() {}

  /** Sizes every column of {@code root} except {@code binaryColumn} for {@code rows} rows. */
  static void allocate(VectorSchemaRoot root, int rows, String binaryColumn) {
    for (FieldVector v : root.getFieldVectors()) {
      if (!v.getName().equals(binaryColumn)) {
        v.setInitialCapacity(rows);
        v.allocateNew();
      }
    }
  }

  static void putUtf8(VectorSchemaRoot root, String column, int row, String value) {
    ((VarCharVector) root.getVector(column)).setSafe(row, value.getBytes(StandardCharsets.UTF_8));
  }

  static void putInt64(VectorSchemaRoot root, String column, int row, long value) {
    ((BigIntVector) root.getVector(column)).setSafe(row, value);
  }

  static void putInt32(VectorSchemaRoot root, String column, int row, int value) {
    ((IntVector) root.getVector(column)).setSafe(row, value);
  }

  static void putInt64s(VectorSchemaRoot root, String column, int row, long[] values) {
    ListVector list = (ListVector) root.getVector(column);
    BigIntVector items = (BigIntVector) list.getDataVector();
    int start = list.startNewValue(row);
    for (int i = 0; i < values.length; i++) {
      items.setSafe(start + i, values[i]);
    }
    list.endValue(row, values.length);
  }

  /**
   * Allocates one data buffer holding every row's value back to back (row i takes lengths[i] bytes),
   * marks the rows set and returns the buffer for the caller to fill: bytes are copied or read into
   * it once, in bulk, never through a per-value API.
   */
  static ArrowBuf putBinaries(VectorSchemaRoot root, String column, long[] lengths) {
    LargeVarBinaryVector v = (LargeVarBinaryVector) root.getVector(column);
    long total = 0;
    for (long len : lengths) {
      total = Math.addExact(total, len);
    }
    v.allocateNew(total, lengths.length);
    ArrowBuf offsets = v.getOffsetBuffer();
    long end = 0;
    offsets.setLong(0, 0);
    for (int i = 0; i < lengths.length; i++) {
      end += lengths[i];
      offsets.setLong((long) (i + 1) * OFFSET_WIDTH, end);
      v.setIndexDefined(i);
    }
    v.setLastSet(lengths.length - 1);
    return v.getDataBuffer();
  }

  static String utf8(VectorSchemaRoot root, String column, int row) {
    return new String(((VarCharVector) present(root, column, row)).get(row), StandardCharsets.UTF_8);
  }

  static long int64(VectorSchemaRoot root, String column, int row) {
    return ((BigIntVector) present(root, column, row)).get(row);
  }

  static int int32(VectorSchemaRoot root, String column, int row) {
    return ((IntVector) present(root, column, row)).get(row);
  }

  static long[] int64s(VectorSchemaRoot root, String column, int row) {
    ListVector list = (ListVector) present(root, column, row);
    BigIntVector items = (BigIntVector) list.getDataVector();
    int start = list.getElementStartIndex(row);
    long[] out = new long[list.getElementEndIndex(row) - start];
    for (int i = 0; i < out.length; i++) {
      if (items.isNull(start + i)) {
        throw new IllegalArgumentException("corrupt shard batch: null element in column '" + column + "' row " + row);
      }
      out[i] = items.get(start + i);
    }
    return out;
  }

  /** Row {@code row}'s bytes as a little-endian view of the vector's off-heap data buffer (no copy). */
  static ByteBuffer binaryView(VectorSchemaRoot root, String column, int row) {
    LargeVarBinaryVector v = (LargeVarBinaryVector) present(root, column, row);
    long start = v.getOffsetBuffer().getLong((long) row * OFFSET_WIDTH);
    long length = v.getOffsetBuffer().getLong((long) (row + 1) * OFFSET_WIDTH) - start;
    if (length < 0 || start < 0 || start + length > v.getDataBuffer().capacity()) {
      throw new IllegalArgumentException("corrupt shard batch: column '" + column + "' row " + row + " spans bytes ["
          + start + ", " + (start + length) + ") of a " + v.getDataBuffer().capacity() + "-byte buffer");
    }
    if (length > Integer.MAX_VALUE) {
      throw new IllegalArgumentException("column '" + column + "' row " + row + " holds " + length
          + " bytes; a host Tensor view addresses at most " + Integer.MAX_VALUE + ": use smaller shards");
    }
    return v.getDataBuffer().nioBuffer(start, (int) length).order(ByteOrder.LITTLE_ENDIAN);
  }

  private static FieldVector present(VectorSchemaRoot root, String column, int row) {
    FieldVector v = root.getVector(column);
    if (v.isNull(row)) {
      throw new IllegalArgumentException("corrupt shard batch: column '" + column + "' is null in row " + row);
    }
    return v;
  }
}
