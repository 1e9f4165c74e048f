#ifndef CONSUL_COPENSSL_SHIM_H
#define CONSUL_COPENSSL_SHIM_H
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/err.h>
#include <openssl/crypto.h>
#include <openssl/opensslv.h>
#endif
