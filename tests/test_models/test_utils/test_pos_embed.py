# Copyright (c) um-mae contributors. All rights reserved.
import pytest
import torch

from um_mae.models.utils import sincos_pos_embed_2d


def test_matches_official_tables(reference):
    sd = reference('mae_pvt.pt')['state_dict']
    torch.testing.assert_close(
        sincos_pos_embed_2d(64, 16), sd['pos_embed'], rtol=0, atol=0)
    torch.testing.assert_close(
        sincos_pos_embed_2d(16, 64), sd['decoder_pos_embed'], rtol=0, atol=0)


def test_layout_column_then_row():
    table = sincos_pos_embed_2d((2, 3), 8)[0]  # (6, 8)
    assert table.shape == (6, 8)
    # token (row 1, col 2): sin/cos of the column first, then of the row
    torch.testing.assert_close(table[5, 0], torch.tensor(2.).sin())
    torch.testing.assert_close(table[5, 4], torch.tensor(1.).sin())


def test_rejects_bad_dims():
    with pytest.raises(ValueError, match='not a multiple of 4'):
        sincos_pos_embed_2d(4, 6)
