#include "extension/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

namespace lorarar {

namespace {
Status io_error(const std::string& what) { return make_error(Error::kIo, what + ": " + std::strerror(errno)); }
}  // namespace

MappedFile::~MappedFile() {
  if (data_ && size_ && !owned_) munmap(const_cast<uint8_t*>(data_), size_);
}

Result<std::shared_ptr<MappedFile>> MappedFile::copy_of(const void* data, size_t size) {
  if (!data && size) return make_error(Error::kInvalidArgument, "no data");
  std::shared_ptr<MappedFile> file(new MappedFile());
  // new[] aligns to max_align_t, as a map's page alignment would for the header; tensor offsets are checked
  // by the parser either way.
  file->owned_.reset(new (std::nothrow) uint8_t[size ? size : 1]);
  if (!file->owned_) return make_error(Error::kOutOfMemory, "cannot allocate " + std::to_string(size) + " bytes");
  if (size) std::memcpy(file->owned_.get(), data, size);
  file->data_ = file->owned_.get();
  file->size_ = size;
  return file;
}

Result<std::shared_ptr<MappedFile>> MappedFile::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return make_error(Error::kNotFound, "no such file");
    return io_error("cannot open");
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    ::close(fd);
    return io_error("cannot stat");
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    return make_error(Error::kInvalidArgument, "is a directory");
  }
  std::shared_ptr<MappedFile> file(new MappedFile());
  file->size_ = static_cast<size_t>(st.st_size);
  if (file->size_ > 0) {
    void* p = mmap(nullptr, file->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      ::close(fd);
      file->size_ = 0;
      return io_error("cannot map");
    }
    file->data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
  return file;
}

Result<std::string> read_text_file(const std::string& path) {
  auto map = MappedFile::open(path);
  if (!map.ok()) return map.status();
  const auto& m = map.get();
  return std::string(reinterpret_cast<const char*>(m->data()), m->size());
}

bool is_directory(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool file_exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string join_path(const std::string& a, const std::string& b) {
  if (a.empty() || a.back() == '/') return a + b;
  return a + "/" + b;
}

AtomicFileWriter::~AtomicFileWriter() {
  if (data_ && size_) munmap(data_, size_);
  if (fd_ >= 0) ::close(fd_);
  if (!committed_ && !tmp_path_.empty()) ::unlink(tmp_path_.c_str());
}

Result<std::unique_ptr<AtomicFileWriter>> AtomicFileWriter::create(const std::string& path, size_t size) {
  static std::atomic<unsigned> counter{0};
  std::unique_ptr<AtomicFileWriter> w(new AtomicFileWriter());
  w->path_ = path;
  w->tmp_path_ = path + ".tmp-" + std::to_string(getpid()) + "-" + std::to_string(counter++);
  w->fd_ = ::open(w->tmp_path_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (w->fd_ < 0) {
    w->tmp_path_.clear();
    return io_error("cannot create");
  }
  if (size > 0) {
    if (ftruncate(w->fd_, static_cast<off_t>(size)) != 0) return io_error("cannot size");
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, w->fd_, 0);
    if (p == MAP_FAILED) return io_error("cannot map for writing");
    w->data_ = static_cast<uint8_t*>(p);
    w->size_ = size;
  }
  return w;
}

Status AtomicFileWriter::commit() {
  if (data_ && size_) {
    if (msync(data_, size_, MS_SYNC) != 0) return io_error("cannot flush");
    munmap(data_, size_);
    data_ = nullptr;
  }
  if (fsync(fd_) != 0) return io_error("cannot sync");
  ::close(fd_);
  fd_ = -1;
  if (::rename(tmp_path_.c_str(), path_.c_str()) != 0) return io_error("cannot rename into place");
  committed_ = true;
  return Status::ok();
}

}  // namespace lorarar
