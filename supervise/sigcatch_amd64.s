#include "textflag.h"

// sigcatchHandler is called by the kernel with the signal number in DI.
// It writes that number, one byte, to sigcatchFD and returns to the
// restorer. It keeps to its own 16 bytes of the signal stack.
TEXT ·sigcatchHandler(SB),NOSPLIT|NOFRAME,$0
	SUBQ	$16, SP
	MOVQ	DI, 0(SP)
	MOVQ	·sigcatchFD(SB), DI
	MOVQ	SP, SI
	MOVQ	$1, DX
	MOVQ	$1, AX	// write
	SYSCALL
	ADDQ	$16, SP
	RET

TEXT ·sigcatchReturn(SB),NOSPLIT|NOFRAME,$0
	MOVQ	$15, AX	// rt_sigreturn
	SYSCALL
	INT	$3

// func sigcatchAddrs() (handler, restorer uintptr)
TEXT ·sigcatchAddrs(SB),NOSPLIT,$0-16
	MOVQ	$·sigcatchHandler(SB), AX
	MOVQ	AX, handler+0(FP)
	MOVQ	$·sigcatchReturn(SB), AX
	MOVQ	AX, restorer+8(FP)
	RET
