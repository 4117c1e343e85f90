package shardquant.kernels.quant;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import shardquant.kernels.tensor.Tensor;

/**
 * Where a tensor's bytes live. {@link QuantizedTensor#to(Device)} moves every part through
 * {@link #copyIn(Tensor)} so no part can be left behind (the pytorch/ao #1310 bug). The CUDA backend
 * adds a device whose tensors live in GPU memory.
 */
public interface Device {
  String name();

  /** A copy of {@code t}'s bytes placed on this device; same dtype and shape, never converted. */
  Tensor copyIn(Tensor t);

  /** Java heap memory. */
  Device HOST = new Device() {
    @Override
    public String name() {
      return "host";
    }

    @Override
    public Tensor copyIn(Tensor t) {
      ByteBuffer copy = ByteBuffer.allocate(Math.toIntExact(t.byteSize())).order(ByteOrder.LITTLE_ENDIAN);
      copy.put(t.bytes()).flip();
      return Tensor.of(t.dtype(), t.shape(), copy);
    }

    @Override
    public String toString() {
      return name();
    }
  };
}
