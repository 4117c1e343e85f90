package shardquant.kernels.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import shardquant.kernels.backend.cuda.EmulatedCudaDevice.Op;
import shardquant.kernels.backend.simd.SimdDifferential;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.quant.GlobalStats;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.QuantizedTensor;
import shardquant.kernels.quant.Recipe;
import shardquant.kernels.select.Backends;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/**
 * {@link CudaShard}'s pipeline on the emulator's timeline: what each copy and kernel is ordered after
 * (stream order, event waits, the host's waits), so what a GPU may overlap.
 */
class CudaShardTest {
  /** 32 rows of 256 bf16 in 4 KiB chunks: 4 chunks through 3 staging buffers. */
  private static final int ROWS = 32;
  private static final int COLS = 256;
  private static final long CHUNK = 4096;

  private static EmulatedCudaDevice dev;
  private static CudaBackend cuda;

  @BeforeAll
  static void start() {
    dev = new EmulatedCudaDevice();
    cuda = new CudaBackend(dev, Backends.cpu(), 2, CHUNK);
  }

  @AfterAll
  static void stop() {
    dev.close();
  }

  /** Chunk i's upload, kernels and downloads, in the order the host queued them. */
  private record Chunk(Op upload, List<Op> kernels, List<Op> downloads) {}

  private static List<Chunk> chunks(List<Op> ops) {
    List<Chunk> out = new ArrayList<>();
    for (Op o : ops) {
      switch (o.kind()) {
        case UPLOAD -> out.add(new Chunk(o, new ArrayList<>(), new ArrayList<>()));
        case KERNEL -> out.get(out.size() - 1).kernels().add(o);
        case DOWNLOAD -> out.get(out.size() - 1).downloads().add(o);
      }
    }
    return out;
  }

  private List<Chunk> quantizeRecorded(Recipe recipe) {
    Tensor rows = SimdDifferential.random(DType.BF16, ROWS, COLS, new Random(7));
    dev.startTimeline();
    CudaDifferential.assertSameAsReference(cuda, rows, QuantConfig.of(recipe), "timeline");
    List<Op> ops = dev.timeline();
    List<Chunk> chunks = chunks(ops);
    assertEquals(ROWS * COLS * 2 / CHUNK, chunks.size(), ops.toString());
    return chunks;
  }

  @Test
  void uploadsOverlapEarlierKernelsAndDownloadsOverlapLaterUploads() {
    for (Recipe recipe : new Recipe[] {Recipe.INT8_WEIGHT_ONLY, Recipe.INT8_DYN_ACT_INT4_WEIGHT}) {
      List<Chunk> chunks = quantizeRecorded(recipe);
      List<Op> ops = dev.timeline();
      for (int i = 0; i < chunks.size(); i++) {
        Chunk c = chunks.get(i);
        String where = recipe.cliName() + " chunk " + i + ": " + ops;
        assertFalse(c.kernels().isEmpty(), where);
        assertFalse(c.downloads().isEmpty(), "downloads queued right after the chunk's kernels: " + where);
        for (Op k : c.kernels()) {
          assertTrue(EmulatedCudaDevice.ordered(ops, c.upload(), k), "a kernel waits for its chunk's upload: " + where);
          for (Op d : c.downloads()) {
            assertTrue(EmulatedCudaDevice.ordered(ops, k, d), "a download waits for the kernel: " + where);
          }
        }
        for (Chunk later : chunks.subList(i + 1, chunks.size())) {
          for (Op k : c.kernels()) {
            assertFalse(EmulatedCudaDevice.ordered(ops, k, later.upload()), "a later upload waits for a kernel: " + where);
          }
          for (Op d : c.downloads()) {
            assertFalse(EmulatedCudaDevice.ordered(ops, later.upload(), d), "a download waits for a later upload: " + where);
            assertFalse(EmulatedCudaDevice.ordered(ops, d, later.upload()), "a later upload waits for a download: " + where);
          }
        }
      }
    }
  }

  @Test
  void tilePackedTilesAreDownloadedAfterTheLastChunk() {
    List<Chunk> chunks = quantizeRecorded(Recipe.INT4_TILE_PACKED);
    // per chunk: its row stats and input flags; after the last: qdata's tiles and scale_and_zero
    for (int i = 0; i < chunks.size() - 1; i++) {
      assertEquals(2, chunks.get(i).downloads().size(), chunks.get(i).toString());
    }
    assertEquals(4, chunks.get(chunks.size() - 1).downloads().size(), chunks.get(chunks.size() - 1).toString());
  }

  @Test
  void partsAreThePinnedBuffersTheyWereDownloadedInto() {
    QuantizedTensor q = cuda.quantize(SimdDifferential.random(DType.BF16, 8, 64, new Random(8)),
        QuantConfig.of(Recipe.INT8_WEIGHT_ONLY), GlobalStats.NONE, new QuantStats());
    assertTrue(q.part("qdata").bytes().isDirect(), "qdata was copied to the heap");
    assertTrue(q.part("scale").bytes().isDirect(), "scale was copied to the heap");
  }

  @Test
  void theHostCopyIntoPinnedMemoryOnSeveralThreadsMovesEveryByte() {
    Random r = new Random(9);
    for (int n : new int[] {0, 1, CudaShard.COPY_PIECE_BYTES - 1, 3 * CudaShard.COPY_PIECE_BYTES + 12345}) {
      for (boolean direct : new boolean[] {false, true}) {
        byte[] bytes = new byte[n + 5];
        r.nextBytes(bytes);
        ByteBuffer src = direct ? ByteBuffer.allocateDirect(bytes.length).put(bytes).flip() : ByteBuffer.wrap(bytes);
        ByteBuffer dst = ByteBuffer.allocateDirect(n + 3);
        CudaShard.copy(src.slice(5, n), dst);
        byte[] got = new byte[n];
        dst.get(0, got);
        byte[] want = new byte[n];
        System.arraycopy(bytes, 5, want, 0, n);
        assertArrayEquals(want, got, n + " bytes, direct " + direct);
        assertEquals(0, dst.position());
      }
    }
  }
}
