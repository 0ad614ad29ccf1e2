#include "textflag.h"

// sigcatchHandler is called by the kernel with the signal number in R0.
// It writes that number, one byte, to sigcatchFD and returns to the
// kernel's sigreturn trampoline in LR. It keeps to its own 16 bytes of the
// signal stack.
TEXT ·sigcatchHandler(SB),NOSPLIT|NOFRAME,$0
	SUB	$16, RSP
	MOVD	R0, 0(RSP)
	MOVD	·sigcatchFD(SB), R0
	MOVD	RSP, R1
	MOVD	$1, R2
	MOVD	$64, R8	// write
	SVC
	ADD	$16, RSP
	RET

// func sigcatchAddrs() (handler, restorer uintptr)
TEXT ·sigcatchAddrs(SB),NOSPLIT,$0-16
	MOVD	$·sigcatchHandler(SB), R0
	MOVD	R0, handler+0(FP)
	MOVD	ZR, restorer+8(FP)
	RET
