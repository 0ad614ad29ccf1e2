package plan

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// Size caps of the files entry reads: a secret or a URL list is small, a Procfile or a CA
// bundle larger, and none may grow memory without bound (DATABASE_URL_FILE=/dev/zero).
const (
	maxSecretFile = 64 << 10
	maxFile       = 1 << 20
)

// readFile reads the regular file at path (a symlink to one is followed: Kubernetes mounts
// secrets as symlinks) into memory, at most limit bytes. It is opened non-blocking so that a
// FIFO with no writer cannot hang entry, and its type is checked on the open descriptor, so
// a device, a FIFO or a directory is refused before anything is read.
func readFile(path string, limit int64) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, fmt.Errorf("cannot open %s: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("cannot stat %s: %w", path, err)
	}
	if kind := fileKind(st.Mode); kind != "" {
		return nil, fmt.Errorf("%s is %s, not a regular file", path, kind)
	}
	if st.Size > limit {
		return nil, fmt.Errorf("%s is %d bytes, over the limit of %d", path, st.Size, limit)
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("cannot read %s: %w", path, err)
	}
	if int64(len(b)) > limit { // it grew since fstat
		return nil, fmt.Errorf("%s is over the limit of %d bytes", path, limit)
	}
	return b, nil
}

func fileKind(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return ""
	case unix.S_IFDIR:
		return "a directory"
	case unix.S_IFIFO:
		return "a FIFO"
	case unix.S_IFCHR, unix.S_IFBLK:
		return "a device"
	case unix.S_IFSOCK:
		return "a socket"
	}
	return "of another kind"
}
