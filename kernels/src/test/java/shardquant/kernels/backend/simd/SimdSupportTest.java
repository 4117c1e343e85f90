package shardquant.kernels.backend.simd;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Random;
import jdk.incubator.vector.FloatVector;
import org.junit.jupiter.api.Test;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.dtype.F16;
import shardquant.kernels.verify.QuantStats;

/** The SIMD building blocks equal their scalar definitions bit for bit. */
class SimdSupportTest {
  @Test
  void everyHalfLoadsAsItsFloat() {
    for (boolean direct : new boolean[] {false, true}) {
      ByteBuffer b = (direct ? ByteBuffer.allocateDirect(2 << 16) : ByteBuffer.allocate(2 << 16)).order(ByteOrder.LITTLE_ENDIAN);
      for (int h = 0; h < 1 << 16; h++) {
        b.putShort(2 * h, (short) h);
      }
      b.position(6).order(ByteOrder.BIG_ENDIAN); // read from byte 0, little-endian, whatever the buffer's state
      for (DType dtype : new DType[] {DType.F16, DType.BF16}) {
        SimdLoad in = new SimdLoad(b, dtype);
        float[] decoded = new float[(1 << 16) + 3];
        in.decode(5, decoded, 3, (1 << 16) - 5); // an odd count: a scalar tail; many staged blocks
        for (int i = 5; i < 1 << 16; i++) {
          float want = dtype == DType.F16 ? F16.toFloat((short) i) : Float.intBitsToFloat(i << 16);
          assertEquals(Float.floatToRawIntBits(want), Float.floatToRawIntBits(decoded[i - 2]),
              dtype + " decode " + Integer.toHexString(i) + (direct ? " (direct)" : " (heap)"));
          assertEquals(Float.floatToRawIntBits(want), Float.floatToRawIntBits(in.scalar(i)), dtype + " scalar " + i);
        }
      }
    }
  }

  @Test
  void floatsLoadAsThemselves() {
    Random r = new Random(4);
    ByteBuffer b = ByteBuffer.allocateDirect(4 * 3001).order(ByteOrder.LITTLE_ENDIAN);
    for (int i = 0; i < 3001; i++) {
      b.putInt(4 * i, i % 7 == 0 ? 0x7fc00001 + i : r.nextInt()); // NaN payloads too
    }
    SimdLoad in = new SimdLoad(b.position(40), DType.F32);
    float[] decoded = new float[3001];
    in.decode(1, decoded, 0, 3000);
    for (int i = 1; i < 3001; i++) {
      assertEquals(b.getInt(4 * i), Float.floatToRawIntBits(decoded[i - 1]), "f32 " + i);
      assertEquals(b.getInt(4 * i), Float.floatToRawIntBits(in.scalar(i)), "f32 scalar " + i);
    }
  }

  @Test
  void rintIsMathRint() {
    Random r = new Random(3);
    float[] v = new float[4096];
    for (int i = 0; i < v.length; i++) {
      v[i] = switch (i % 8) {
        case 0 -> (float) (r.nextGaussian() * 10);
        case 1 -> Math.round(r.nextGaussian() * 100) + 0.5f;
        case 2 -> -(float) r.nextDouble();
        case 3 -> Float.intBitsToFloat(r.nextInt());
        case 4 -> (float) (r.nextGaussian() * 0x1p23);
        case 5 -> i % 16 == 5 ? -0.0f : Float.NaN;
        case 6 -> 0x1p22f + r.nextInt(1000) * 0.5f;
        default -> -0.5f * (i % 5);
      };
    }
    for (int i = 0; i < v.length; i += 8) {
      float[] got = SimdMath.rint(FloatVector.fromArray(SimdLoad.F, v, i)).toArray();
      for (int k = 0; k < 8; k++) {
        if (Float.isNaN(v[i + k])) {
          assertEquals(true, Float.isNaN(got[k]));
        } else {
          assertEquals(Float.floatToRawIntBits((float) Math.rint(v[i + k])), Float.floatToRawIntBits(got[k]), "rint " + v[i + k]);
        }
      }
    }
  }

  @Test
  void roundBf16IsBf16Round() {
    Random r = new Random(5);
    float[] v = new float[1 << 16];
    for (int i = 0; i < v.length; i++) {
      v[i] = switch (i % 6) {
        case 0 -> Float.intBitsToFloat(r.nextInt(0x7f800000) | (i % 12 == 0 ? 0x80000000 : 0)); // any finite
        case 1 -> Float.intBitsToFloat(r.nextInt(0x7f80) << 16 | 0x8000 | (i % 12 == 1 ? 0x80000000 : 0)); // ties
        case 2 -> Float.intBitsToFloat(0x7f7f0000 | r.nextInt(0x10000)); // near overflow
        case 3 -> Float.intBitsToFloat(r.nextInt(0x10000) | (i % 12 == 3 ? 0x80000000 : 0)); // subnormal, +-0
        case 4 -> (float) (r.nextGaussian() * 100);
        default -> i % 12 == 5 ? Float.intBitsToFloat(0xffc00000) : Float.POSITIVE_INFINITY * (i % 24 < 12 ? 1 : -1);
      };
    }
    for (int i = 0; i < v.length; i += 8) {
      float[] got = SimdMath.roundBf16(FloatVector.fromArray(SimdLoad.F, v, i)).toArray();
      for (int k = 0; k < 8; k++) {
        float want = shardquant.kernels.dtype.Bf16.round(v[i + k]);
        if (Float.isNaN(want)) {
          assertEquals(true, Float.isNaN(got[k]));
        } else {
          assertEquals(Float.floatToRawIntBits(want), Float.floatToRawIntBits(got[k]), "bf16 of " + v[i + k]);
        }
      }
    }
  }

  @Test
  void roundIsDTypeRound() {
    Random r = new Random(4);
    float[] v = new float[1 << 18];
    for (int i = 0; i < v.length; i++) {
      int bits = r.nextInt();
      v[i] = switch (i % 4) {
        case 0 -> Float.isNaN(Float.intBitsToFloat(bits)) ? (bits < 0 ? -Float.NaN : Float.NaN)
            : Float.intBitsToFloat(bits); // any float, infinities included; NaNs as arithmetic makes them
        case 1 -> Float.intBitsToFloat(bits & 0x8fffffff | 0x30000000); // f16's range, subnormals to overflow
        case 2 -> Float.intBitsToFloat((bits & 0x87ff0000) + (0x3880 << 16) | (r.nextBoolean() ? 0x1000 : 0x8000)); // ties
        default -> (i & 4) == 0 ? 65520f - (bits & 31) : Float.intBitsToFloat(0x7f7f8000 - (bits & 0xff));
      };
    }
    for (DType d : new DType[] {DType.F32, DType.BF16, DType.F16}) {
      for (int i = 0; i < v.length; i += 8) {
        float[] got = SimdMath.round(FloatVector.fromArray(SimdLoad.F, v, i), d).toArray();
        for (int k = 0; k < 8; k++) {
          float want = d.round(v[i + k]);
          if (Float.isNaN(want)) {
            assertTrue(Float.isNaN(got[k]), "NaN stays NaN");
          } else {
            float x = v[i + k];
            assertEquals(Float.floatToRawIntBits(want), Float.floatToRawIntBits(got[k]), () -> d + " round " + x);
          }
        }
      }
    }
  }

  @Test
  void statsFollowTheReferenceOrder() {
    Random r = new Random(9);
    for (int length : new int[] {1, 7, 8, 9, 63, 64, 1000, 4097}) {
      float[] x = new float[length];
      float[] d = new float[length];
      for (int i = 0; i < length; i++) {
        x[i] = (float) (r.nextGaussian() * Math.pow(10, r.nextInt(8) - 4));
        d[i] = x[i] + (float) (r.nextGaussian() * 1e-3);
      }
      x[length / 2] = Float.NaN;
      QuantStats want = new QuantStats();
      want.addBlock(x, d, 0, length, 3);
      QuantStats got = new QuantStats();
      SimdStats s = new SimdStats();
      for (int i = 0; i < length; i += 8) {
        int n = Math.min(8, length - i);
        float[] xs = java.util.Arrays.copyOfRange(x, i, i + 8);
        float[] ds = java.util.Arrays.copyOfRange(d, i, i + 8);
        s.add(FloatVector.fromArray(SimdLoad.F, xs, 0), FloatVector.fromArray(SimdLoad.F, ds, 0), SimdLoad.firstLanes(n));
      }
      s.endBlock(got, length, 3);
      assertEquals(want, got, "length " + length);
      assertEquals(want.nonFinite(), got.nonFinite());
      // from arrays, in pieces of whole vectors and a last piece of any length
      QuantStats fromArrays = new QuantStats();
      int piece = Math.min(length - length % 8, 16);
      s.add(x, d, 0, piece);
      s.add(x, d, piece, length - piece);
      s.endBlock(fromArrays, length, 3);
      assertEquals(want, fromArrays, "arrays, length " + length);
      assertEquals(want.nonFinite(), fromArrays.nonFinite());
      // the same block in runs of whole multiples of 8, the last run any length
      QuantStats runs = new QuantStats();
      for (int i = 0; i < length; ) {
        int n = Math.min(length - i, 8 * (1 + r.nextInt(20)));
        s.add(x, d, i, n);
        i += n;
      }
      s.endBlock(runs, length, 3);
      assertEquals(want, runs, "runs, length " + length);
      // the same block in runs of floats copied to the arrays' start: 16, then 256 at a time, the last run with the tail
      QuantStats copied = new QuantStats();
      for (int i = 0; i < length; ) {
        int n = Math.min(i == 0 ? 16 : 256, length - i);
        float[] xs = java.util.Arrays.copyOfRange(x, i, i + 256);
        float[] ds = java.util.Arrays.copyOfRange(d, i, i + 256);
        s.add(xs, ds, n);
        i += n;
      }
      s.endBlock(copied, length, 3);
      assertEquals(want, copied, "copied runs, length " + length);
      assertEquals(want.nonFinite(), copied.nonFinite());
    }
  }
}
