// Tokenizes many strings with llama.cpp's vocabulary code: the GGUF's vocabulary is loaded once,
// then each input line (the string's UTF-8 bytes as hex, so any byte can be given) is tokenized with
// add_special and parse_special off, as llama-perplexity tokenizes text, and its ids printed on one
// line, space-separated.
//   tokenize_many MODEL.gguf < strings.hex > ids.txt
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "llama.h"

static std::string from_hex(const std::string &hex) {
    std::string bytes;
    for (size_t i = 0; i + 1 < hex.size(); i += 2) bytes.push_back((char)std::stoi(hex.substr(i, 2), nullptr, 16));
    return bytes;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: tokenize_many MODEL.gguf < strings.hex\n");
        return 2;
    }
    llama_log_set([](ggml_log_level, const char *, void *) {}, nullptr);
    llama_backend_init();
    llama_model_params params = llama_model_default_params();
    params.vocab_only = true;
    llama_model *model = llama_model_load_from_file(argv[1], params);
    if (!model) {
        std::fprintf(stderr, "cannot load %s\n", argv[1]);
        return 1;
    }
    const llama_vocab *vocab = llama_model_get_vocab(model);
    std::string line;
    std::vector<llama_token> tokens;
    while (std::getline(std::cin, line)) {
        std::string text = from_hex(line);
        tokens.resize(text.size() + 8);
        int n = llama_tokenize(vocab, text.data(), (int)text.size(), tokens.data(), (int)tokens.size(), false, false);
        if (n < 0) {
            tokens.resize(-n);
            n = llama_tokenize(vocab, text.data(), (int)text.size(), tokens.data(), (int)tokens.size(), false, false);
        }
        for (int i = 0; i < n; i++) std::printf(i ? " %d" : "%d", tokens[i]);
        std::printf("\n");
    }
    llama_model_free(model);
    return 0;
}
