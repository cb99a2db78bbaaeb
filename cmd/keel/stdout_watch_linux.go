package main

import (
	"context"
	"os"
	"syscall"
)

// watchStdout calls closed once the reader of f (stdout, when it is a
// pipe) goes away, even while nothing is written to it: a follower of an
// idle topic piped into head would otherwise wait for the next record to
// find out. It uses epoll, which reports EPOLLERR on a pipe's write end
// once its read end is closed. It does nothing for terminals and files
// (epoll refuses files; a terminal is left to SIGHUP). The goroutine ends
// with ctx.
func watchStdout(ctx context.Context, f *os.File, closed func()) {
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFIFO {
		return
	}
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return
	}
	// EPOLLERR is always reported; asking for no other event keeps a
	// writable pipe from waking the loop.
	ev := syscall.EpollEvent{Events: 0, Fd: int32(f.Fd())}
	if err := syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, int(f.Fd()), &ev); err != nil {
		syscall.Close(ep)
		return
	}
	go func() {
		defer syscall.Close(ep)
		events := make([]syscall.EpollEvent, 1)
		for ctx.Err() == nil {
			// A short timeout lets the goroutine see ctx end: epoll
			// has no way to be woken by a context.
			n, err := syscall.EpollWait(ep, events, 200)
			if err != nil && err != syscall.EINTR {
				return
			}
			if n > 0 && events[0].Events&(syscall.EPOLLERR|syscall.EPOLLHUP) != 0 {
				closed()
				return
			}
		}
	}()
}
