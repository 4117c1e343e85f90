package shardquant.kernels.backend.cuda;

/**
 * A {@link CudaDevice} that forwards every call to another: the base of wrappers that watch or change a
 * few calls (the bench's launch log, the tests' failing and corrupting devices).
 */
public class ForwardingCudaDevice implements CudaDevice {
  private final CudaDevice d;

  public ForwardingCudaDevice(CudaDevice d) {
    this.d = d;
  }

  @Override
  public String description() {
    return d.description();
  }

  @Override
  public long totalMemory() {
    return d.totalMemory();
  }

  @Override
  public Memory alloc(long bytes) {
    return d.alloc(bytes);
  }

  @Override
  public Pinned allocPinned(long bytes) {
    return d.allocPinned(bytes);
  }

  @Override
  public Stream stream() {
    return d.stream();
  }

  @Override
  public void copyToDevice(Pinned src, long srcOffset, Ptr dst, long bytes, Stream s) {
    d.copyToDevice(src, srcOffset, dst, bytes, s);
  }

  @Override
  public void copyToHost(Ptr src, Pinned dst, long dstOffset, long bytes, Stream s) {
    d.copyToHost(src, dst, dstOffset, bytes, s);
  }

  @Override
  public void launch(Stream s, String kernel, int gridX, int blockX, int dynamicSharedBytes, Object... args) {
    d.launch(s, kernel, gridX, blockX, dynamicSharedBytes, args);
  }

  @Override
  public void synchronize(Stream s) {
    d.synchronize(s);
  }

  @Override
  public Event event() {
    return d.event();
  }

  @Override
  public void record(Event e, Stream s) {
    d.record(e, s);
  }

  @Override
  public void waitEvent(Stream s, Event e) {
    d.waitEvent(s, e);
  }

  @Override
  public void synchronize(Event e) {
    d.synchronize(e);
  }

  @Override
  public FunctionAttributes attributes(String kernel) {
    return d.attributes(kernel);
  }
}
